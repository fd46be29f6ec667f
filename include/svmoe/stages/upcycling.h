// Stage 2's upcycling transformations (docs/upcycling.md), applied to one expert's FFN weight at
// a time so that merging streams. With d_ff the FFN's intermediate size and r = merge.drop_ratio:
//   S_{l,e} = the first floor(r d_ff) entries of a random permutation of {0..d_ff-1}, one set per
//             layer l and expert e, shared by the expert's three projections (a neuron is dropped
//             whole: rows S of w1 = gate_proj and w3 = up_proj, columns S of w2 = down_proj);
//   drop_upcycling (Nakamura et al., ICLR 2025):  W[S] ~ normal(mean(W[S]), std(W[S])), per matrix;
//   noise (the random-noise upcycling of their conversions/):  W[S] += normal(0, noise_std);
//   everything outside S is copied. Each draw has its own generator seeded from (seed, layer,
//   expert, projection), so a value does not depend on the order tensors are written in.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "svmoe/config/enums.h"
#include "svmoe/io/parameter_names.h"

namespace svmoe {

// Where one expert's FFN weight sits in the MoE, and the seed its draws derive from.
struct ExpertFfnSlot {
  std::int64_t layer = 0;
  std::int64_t expert = 0;
  parameter_names::FfnProjection projection = parameter_names::FfnProjection::kGate;
  std::uint64_t seed = 0;
};

// The dimension of a projection's weight that indexes the FFN's intermediate neurons.
std::int64_t intermediate_dim(parameter_names::FfnProjection projection);

// S_{l,e}: the sorted neuron indices (int64) that expert e of layer l drops or perturbs.
torch::Tensor dropped_neurons(std::int64_t intermediate_size, double ratio, std::int64_t layer, std::int64_t expert,
                              std::uint64_t seed);

// Drop-Upcycling: a copy of `weight` with its neurons in S re-drawn from a normal with the mean
// and (unbiased) std of the values they replace; `weight` itself when S is empty.
torch::Tensor drop_upcycled(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio);

// Random-noise upcycling: a copy of `weight` with normal(0, std) added to its neurons in S.
torch::Tensor noise_upcycled(const torch::Tensor& weight, const ExpertFfnSlot& slot, double ratio, double std);

// A router [experts, hidden] with standard deviation `std`: normal(0, std), or uniform centred on
// its sample mean ((u - mean(u)) std sqrt(12), u ~ U[0, 1)), from the generator seed + 1000003 layer.
torch::Tensor initial_router(RouterInit init, std::int64_t layer, std::int64_t experts, std::int64_t hidden, double std,
                             std::uint64_t seed, torch::ScalarType dtype);

}  // namespace svmoe
