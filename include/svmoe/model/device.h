// Choosing the device: "auto" is CUDA when this LibTorch has it and a GPU is present.
#pragma once

#include <torch/types.h>

#include <string>

#include "svmoe/config/enums.h"

namespace svmoe {

// "auto" | "cpu" | "cuda" | "cuda:N"; throws ConfigError for CUDA where none is available.
torch::Device resolve_device(const std::string& name);

// CPU intra-op threads for LibTorch: `threads`, or every core when 0 (Debian's LibTorch
// otherwise starts with one).
void set_cpu_threads(int threads);

// train.precision on `device`: kAuto is bf16_mixed on CUDA and float32 elsewhere; others as given.
Precision resolve_precision(Precision precision, const torch::Device& device);

// "float32" | "bfloat16" | "float16"; throws ConfigError otherwise.
torch::ScalarType parse_compute_dtype(const std::string& name);

}  // namespace svmoe
