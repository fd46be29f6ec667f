#include "svmoe/train/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/model/device.h"
#include "svmoe/train/cross_entropy.h"

namespace svmoe {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The plan is for CUDA, so `auto` is bf16_mixed here, as the trainer resolves it there.
Precision planned_precision(const TrainSettings& train) {
  return resolve_precision(train.precision, torch::Device(torch::kCUDA));
}

int compute_element_bytes(const TrainSettings& train) {
  return planned_precision(train) == Precision::kFloat32 ? 4 : 2;
}

// Float32 moments, plus a float32 master copy of bf16 weights under bf16_mixed.
int optimizer_bytes_per_parameter(const TrainSettings& train) {
  return 8 + (planned_precision(train) == Precision::kBf16Mixed ? 4 : 0);
}

}  // namespace

double activation_bytes(const ModelConfig& model, std::int64_t micro_batch, std::int64_t sequence_length,
                        int element_bytes, bool checkpointing) {
  const double tokens = static_cast<double>(micro_batch * sequence_length);
  const double h = static_cast<double>(model.hidden_size);
  // Per token and block (model/architecture_arithmetic.h, term by term in docs/training.md).
  const ActivationsPerToken a = activations_per_token(model, sequence_length);
  const double one_block = a.block * element_bytes + a.block_float32 * 4;
  // Checkpointed: every block's input (and MoE router logits, an output), and one block's
  // activations while it is recomputed.
  const double kept = h * element_bytes + a.kept_float32 * 4;
  const double layers = static_cast<double>(model.num_hidden_layers);
  const double per_token_blocks = checkpointing ? layers * kept + one_block : layers * one_block;
  // The embedding output (h), the final norm's (h) and the loss's gradient for it (h). The loss
  // (train/cross_entropy.h) holds one chunk's logits at a time (in the compute dtype, in float32
  // and its gradient back in the compute dtype) and the LM head's gradient (float32 sum and its
  // copy in the compute dtype).
  const double per_token_ends = 3 * h * element_bytes;
  const double vocab = static_cast<double>(model.vocab_size);
  const double chunk = static_cast<double>(lm_loss_chunk_rows(micro_batch * sequence_length, model.vocab_size));
  const double loss = chunk * vocab * (2 * element_bytes + 4) + vocab * h * (4 + element_bytes);
  return tokens * (per_token_blocks + per_token_ends) + loss;
}

MemoryPlan plan_memory(const ModelConfig& model, const TrainSettings& train, int world_size, bool routers_only) {
  MemoryPlan plan;
  plan.world_size = world_size;
  plan.parameters = parameter_count(model);
  plan.trained_parameters = routers_only ? router_parameter_count(model) : plan.parameters;
  const int element = compute_element_bytes(train);
  plan.weights = static_cast<double>(plan.parameters) * element;
  plan.gradients = static_cast<double>(plan.trained_parameters) * element;
  const int shards = train.zero_stage >= 1 ? world_size : 1;
  plan.optimizer_state =
      static_cast<double>(plan.trained_parameters) * optimizer_bytes_per_parameter(train) / static_cast<double>(shards);
  plan.activations =
      activation_bytes(model, train.micro_batch, train.sequence_length, element, train.activation_checkpointing);
  return plan;
}

std::vector<std::string> memory_advice(const MemoryPlan& plan, const ModelConfig& model, const TrainSettings& train,
                                       bool routers_only, double usable_bytes) {
  std::vector<std::string> advice;
  if (plan.total() <= usable_bytes) return advice;
  const auto gib = [](double bytes) { return fmt::format("{:.1f} GiB", bytes / kGiB); };
  const double full_state = plan.optimizer_state * (train.zero_stage >= 1 ? plan.world_size : 1);
  const double fixed = plan.weights + plan.gradients;
  // ZeRO-1 over the ranks there are, or over as many as it takes.
  if (train.zero_stage == 0 && plan.world_size > 1) {
    const double sharded = full_state / plan.world_size;
    advice.push_back(fmt::format("set train.zero_stage: 1: the optimizer state falls from {} to {} a rank ({} in all)",
                                 gib(plan.optimizer_state), gib(sharded), gib(plan.total() - full_state + sharded)));
  }
  const double room = usable_bytes - fixed - plan.activations;
  if (room > 0 && full_state > room) {
    const int ranks = static_cast<int>(std::ceil(full_state / room));
    if (ranks > plan.world_size) {
      advice.push_back(
          fmt::format("with train.zero_stage: 1, {} or more data-parallel GPUs hold the optimizer state", ranks));
    }
  }
  const int element = compute_element_bytes(train);
  if (!train.activation_checkpointing) {
    const double recomputed =
        activation_bytes(model, train.micro_batch, train.sequence_length, element, /*checkpointing=*/true);
    advice.push_back(fmt::format("set train.activation_checkpointing: true: activations fall from {} to {}",
                                 gib(plan.activations), gib(recomputed)));
  }
  // Smaller micro-batches, the same global batch.
  if (train.micro_batch > 1) {
    const double one = activation_bytes(model, 1, train.sequence_length, element, train.activation_checkpointing);
    advice.push_back(fmt::format(
        "set train.micro_batch: 1 and train.grad_accum: {} (the same global batch): activations fall from {} to {}",
        train.micro_batch * train.grad_accum, gib(plan.activations), gib(one)));
  }
  if (fixed + plan.activations / static_cast<double>(train.micro_batch) > usable_bytes) {
    advice.push_back(
        fmt::format("the {} weights and gradients alone ({}) and one sequence's activations do not fit: shorter "
                    "train.sequence_length, or sharding the weights (ZeRO-3 / FSDP, not in svmoe yet)",
                    routers_only ? "model's" : "trained model's", gib(fixed)));
  }
  return advice;
}

}  // namespace svmoe
