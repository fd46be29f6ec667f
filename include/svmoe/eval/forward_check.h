// svmoe forward: run a checkpoint on given token ids and write or compare its outputs, to check
// svmoe's model against another framework's (docs/formats.md, "svmoe forward files").
#pragma once

#include <filesystem>
#include <vector>

#include "svmoe/config/settings.h"
#include "svmoe/io/safetensors.h"

namespace svmoe {

// float32 `logits` [B, T, V] and, for MoE models, `router_logits.{l}` [B*T, N] per layer.
std::vector<NamedTensor> run_forward(const ForwardSettings& settings, const RuntimeSettings& runtime);

// Compares `outputs` with the same-named tensors of `expected_path`; logs each difference.
// True when every compared tensor is within `atol`; an error when none could be compared.
bool compare_outputs(const std::vector<NamedTensor>& outputs, const std::filesystem::path& expected_path, double atol);

// What the subcommand does: run, then write forward.output and/or compare with forward.compare
// (a ComparisonError, exit code 7, when a difference exceeds forward.atol).
void run_forward_check(const ForwardSettings& settings, const RuntimeSettings& runtime);

}  // namespace svmoe
