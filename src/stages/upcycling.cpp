#include "svmoe/stages/upcycling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

namespace svmoe {

namespace {

using parameter_names::FfnProjection;

// SplitMix64's finaliser: well-spread seeds for the per-(layer, expert, projection) generators.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Draw streams: the neuron set S, and each projection's values.
enum class Draw : std::uint64_t { kNeurons = 1, kValues = 2 };

at::Generator generator_for(std::uint64_t seed, Draw draw, std::int64_t layer, std::int64_t expert,
                            std::int64_t projection) {
  std::uint64_t state = mix(seed);
  for (const std::uint64_t part : {static_cast<std::uint64_t>(draw), static_cast<std::uint64_t>(layer),
                                   static_cast<std::uint64_t>(expert), static_cast<std::uint64_t>(projection)}) {
    state = mix(state ^ part);
  }
  return at::detail::createCPUGenerator(state);
}

// `weight` with the entries of the neurons in S (float32 values [rows or columns of S]) replaced
// by new_values(values, generator), the generator the slot's own; `weight` itself when S is empty.
template <typename NewValues>
torch::Tensor with_neurons_replaced(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio,
                                    NewValues&& new_values) {
  const std::int64_t dim = intermediate_dim(slot.projection);
  const torch::Tensor neurons = dropped_neurons(weight.size(dim), ratio, slot.layer, slot.expert, slot.seed);
  if (neurons.numel() == 0) return weight;
  torch::Tensor result = weight.to(torch::kFloat32, false, /*copy=*/true);
  auto generator =
      generator_for(slot.seed, Draw::kValues, slot.layer, slot.expert, static_cast<std::int64_t>(slot.projection));
  result.index_copy_(dim, neurons, new_values(result.index_select(dim, neurons), generator));
  return result.to(weight.scalar_type());
}

}  // namespace

std::int64_t intermediate_dim(FfnProjection projection) { return projection == FfnProjection::kDown ? 1 : 0; }

torch::Tensor dropped_neurons(std::int64_t intermediate_size, double ratio, std::int64_t layer, std::int64_t expert,
                              std::uint64_t seed) {
  const auto count = static_cast<std::int64_t>(std::floor(ratio * static_cast<double>(intermediate_size)));
  auto generator = generator_for(seed, Draw::kNeurons, layer, expert, 0);
  const torch::Tensor permutation =
      at::randperm(intermediate_size, generator, torch::TensorOptions().dtype(torch::kInt64));
  return std::get<0>(permutation.slice(0, 0, count).sort());
}

torch::Tensor drop_upcycled(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio) {
  return with_neurons_replaced(weight, slot, ratio, [](const torch::Tensor& replaced, at::Generator& generator) {
    const double mean = replaced.mean().item<double>();
    const double std = replaced.numel() > 1 ? replaced.std().item<double>() : 0.0;
    return at::normal(mean, std, replaced.sizes(), generator);
  });
}

torch::Tensor noise_upcycled(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio, double std) {
  return with_neurons_replaced(weight, slot, ratio, [std](const torch::Tensor& perturbed, at::Generator& generator) {
    return perturbed + at::normal(0.0, std, perturbed.sizes(), generator);
  });
}

torch::Tensor initial_router(RouterInit init, std::int64_t layer, std::int64_t experts, std::int64_t hidden, double std,
                             std::uint64_t seed, torch::ScalarType dtype) {
  auto generator = at::detail::createCPUGenerator(seed + 1000003ULL * static_cast<std::uint64_t>(layer));
  if (init == RouterInit::kNormal) return at::normal(0.0, std, {experts, hidden}, generator).to(dtype);
  const torch::Tensor uniform = at::rand({experts, hidden}, generator, torch::TensorOptions().dtype(torch::kFloat32));
  return ((uniform - uniform.mean()) * (std * std::sqrt(12.0))).to(dtype);
}

}  // namespace svmoe
