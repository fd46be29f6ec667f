// Random initialisation as transformers' _init_weights for Llama/Mixtral: every matrix (linear
// and embedding weights) ~ normal(0, initializer_range), biases 0, norm weights 1. Seeded.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>

namespace svmoe {

void initialize_weights(torch::nn::Module& module, double std, std::uint64_t seed);

}  // namespace svmoe
