// The training loop every training stage runs on: causal-LM loss, AdamW, schedule, clipping,
// gradient accumulation, periodic validation, metrics, checkpoints and resume.
//
// The run directory holds checkpoint-STEP/ (a Hugging Face directory plus trainer_state.json
// and optimizer.safetensors), metrics.jsonl (one JSON object per logging or validation step)
// and, at the end, final/ (the trained model). Running the same command again with the same
// run directory resumes from the newest complete checkpoint; on the CPU the resumed run's
// losses equal the uninterrupted run's exactly.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/train/batches.h"

namespace svmoe {

struct TrainingJob {
  CausalLM model{nullptr};
  nlohmann::json base_config = nlohmann::json::object();  // config.json fields to keep when saving
  std::filesystem::path tokenizer_from;                   // tokenizer files copied into checkpoints
  std::vector<std::filesystem::path> train_shards;
  std::vector<std::filesystem::path> valid_shards;  // may be empty
  std::filesystem::path output;                     // the run directory
  std::uint64_t seed = 0;
};

struct TrainResult {
  std::int64_t steps = 0;  // optimizer steps done in total
  double last_loss = 0.0;  // training loss of the last step
  std::optional<double> valid_loss;
  bool interrupted = false;  // stopped by a signal after checkpointing
  bool resumed = false;
};

TrainResult train_causal_lm(TrainingJob& job, const TrainSettings& settings);

// Mean next-token loss of `model` over `batches` batches of `sampler` (in eval mode, no grad).
double evaluate_loss(CausalLM& model, WindowSampler& sampler, std::int64_t batches, std::int64_t micro_batch);

// The newest complete checkpoint-STEP in a run directory, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run);

}  // namespace svmoe
