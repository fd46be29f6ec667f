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

torch::Tensor neurons_of(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio) {
  return dropped_neurons(weight.size(intermediate_dim(slot.projection)), ratio, slot.layer, slot.expert, slot.seed);
}

at::Generator values_generator(const ExpertFfnSlot& slot) {
  return generator_for(slot.seed, Draw::kValues, slot.layer, slot.expert, static_cast<std::int64_t>(slot.projection));
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
  const torch::Tensor neurons = neurons_of(weight, slot, ratio);
  if (neurons.numel() == 0) return weight;
  const std::int64_t dim = intermediate_dim(slot.projection);
  torch::Tensor result = weight.to(torch::kFloat32, false, /*copy=*/true);
  const torch::Tensor replaced = result.index_select(dim, neurons);
  const double mean = replaced.mean().item<double>();
  const double std = replaced.numel() > 1 ? replaced.std().item<double>() : 0.0;
  auto generator = values_generator(slot);
  result.index_copy_(dim, neurons, at::normal(mean, std, replaced.sizes(), generator));
  return result.to(weight.scalar_type());
}

torch::Tensor noise_upcycled(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio, double std) {
  const torch::Tensor neurons = neurons_of(weight, slot, ratio);
  if (neurons.numel() == 0) return weight;
  const std::int64_t dim = intermediate_dim(slot.projection);
  torch::Tensor result = weight.to(torch::kFloat32, false, /*copy=*/true);
  const torch::Tensor perturbed = result.index_select(dim, neurons);
  auto generator = values_generator(slot);
  result.index_copy_(dim, neurons, perturbed + at::normal(0.0, std, perturbed.sizes(), generator));
  return result.to(weight.scalar_type());
}

torch::Tensor initial_router(RouterInit init, std::int64_t layer, std::int64_t experts, std::int64_t hidden, double std,
                             std::uint64_t seed, torch::ScalarType dtype) {
  auto generator = at::detail::createCPUGenerator(seed + 1000003ULL * static_cast<std::uint64_t>(layer));
  if (init == RouterInit::kNormal) return at::normal(0.0, std, {experts, hidden}, generator).to(dtype);
  const torch::Tensor uniform = at::rand({experts, hidden}, generator, torch::TensorOptions().dtype(torch::kFloat32));
  return ((uniform - uniform.mean()) * (std * std::sqrt(12.0))).to(dtype);
}

}  // namespace svmoe
