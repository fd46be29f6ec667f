// Loading a checkpoint to run it (eval, report, forward, the BTM experts): the one place that
// decides its dtype, device, expert path and mode, so that every reader runs a model alike.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <optional>

#include "svmoe/config/enums.h"
#include "svmoe/model/causal_lm.h"

namespace svmoe {

struct InferenceOptions {
  torch::Device device = torch::kCPU;
  // The compute dtype; none: the checkpoint's own (config.json's dtype).
  std::optional<torch::ScalarType> dtype = torch::kFloat32;
  ExpertPath expert_path = ExpertPath::kAuto;  // runtime.expert_path
};

// The model in `directory` (a Hugging Face checkpoint), its weights loaded, on the device in
// the dtype, in eval mode.
CausalLM load_model_for_inference(const std::filesystem::path& directory, const InferenceOptions& options);

}  // namespace svmoe
