// How much GPU memory one data-parallel rank needs to train a model, before anything runs
// (`svmoe plan`, docs/training.md "Memory plan"): the weights, their gradients, the optimizer
// state (float32 moments, and master weights under bf16_mixed; 1/N of it with ZeRO-1) and the
// activations the backward pass keeps for one micro-batch, counted tensor by tensor for
// svmoe's Llama and Mixtral blocks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "svmoe/config/settings.h"
#include "svmoe/model/model_config.h"

namespace svmoe {

struct MemoryPlan {
  std::int64_t parameters = 0;
  std::int64_t trained_parameters = 0;
  int world_size = 1;
  // Bytes per rank.
  double weights = 0, gradients = 0, optimizer_state = 0, activations = 0;
  double total() const { return weights + gradients + optimizer_state + activations; }
};

// `routers_only`: only the MoE routers train (stage 3); activations are still kept, since a
// router's gradient flows back through every later block. The compute dtype is what
// train.precision gives on CUDA (auto: bf16_mixed).
MemoryPlan plan_memory(const ModelConfig& model, const TrainSettings& train, int world_size, bool routers_only);

// The activations one micro-batch keeps for the backward pass, in bytes (the formula is in
// docs/training.md); with `checkpointing`, each block's input plus one block's activations.
double activation_bytes(const ModelConfig& model, std::int64_t micro_batch, std::int64_t sequence_length,
                        int element_bytes, bool checkpointing = false);

// What to change when `plan` needs more than `usable_bytes` a GPU: the settings that would
// make it fit, most effective first; empty when it fits.
std::vector<std::string> memory_advice(const MemoryPlan& plan, const ModelConfig& model, const TrainSettings& train,
                                       bool routers_only, double usable_bytes);

}  // namespace svmoe
