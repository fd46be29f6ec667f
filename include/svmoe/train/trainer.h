// The training loop every training stage runs on: an objective (objectives.h), AdamW,
// schedule, clipping, gradient accumulation, data parallelism, mixed precision, periodic
// validation, metrics, checkpoints and resume.
//
// The run directory holds checkpoint-STEP/ (a Hugging Face directory plus trainer_state.json
// and optimizer.safetensors), metrics.jsonl (one JSON object per logging or validation step)
// and train.log. Running the same command again with the same run directory resumes from the
// newest complete checkpoint; on the CPU the resumed run's losses equal the uninterrupted run's
// exactly.
//
// Data parallel: every rank runs this with the same job; each reads its own part of every
// global batch (train.micro_batch windows per rank), gradients are averaged over ranks, and only
// rank 0 writes checkpoints, metrics and the log copy.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/train/batches.h"
#include "svmoe/train/distributed.h"
#include "svmoe/train/objectives.h"
#include "svmoe/util/directory_lock.h"

namespace svmoe {

struct TrainingJob {
  CausalLM model{nullptr};
  std::shared_ptr<TrainingObjective> objective;           // null: next-token loss, no LB term
  nlohmann::json base_config = nlohmann::json::object();  // config.json fields to keep when saving
  std::filesystem::path tokenizer_from;                   // tokenizer files copied into checkpoints
  // Written as config.json's router_aux_loss_coef when set: the LB coefficient the run trained with.
  std::optional<double> router_aux_loss_coef;
  std::vector<SamplerSource> train_sources;
  std::vector<std::filesystem::path> valid_shards;  // may be empty
  std::filesystem::path output;                     // the run directory
  bool tensorboard = false;                         // mirror metrics.jsonl as TensorBoard scalars
  std::uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  ProcessGroup group;  // a group of one unless data parallel
};

struct TrainResult {
  std::int64_t steps = 0;  // optimizer steps done in total
  double last_loss = 0.0;  // training loss of the last step
  std::optional<double> valid_loss;
  bool interrupted = false;  // stopped by a signal after checkpointing
  bool resumed = false;
};

TrainResult train_model(TrainingJob& job, const TrainSettings& settings);

// One writer per directory in a job of several ranks (util/directory_lock.h): rank 0 takes the
// lock; when it cannot, every rank throws LockError, so that no rank waits in a collective for a
// refused one. Empty on the other ranks.
std::optional<DirectoryLock> lock_on_main_rank(const std::filesystem::path& directory, const std::string& purpose,
                                               const ProcessGroup& group);

// Mean next-token loss of `model` over `batches` batches of `sampler` (in eval mode, no grad).
double evaluate_loss(CausalLM& model, WindowSampler& sampler, std::int64_t batches, std::int64_t micro_batch);

// Writes the job's model as a Hugging Face directory (tokenizer files and aux_free state
// included; config.json's dtype is the parameters').
void save_model(const TrainingJob& job, const std::filesystem::path& directory);

// The dtype parameters are trained in: train.precision resolved for `device` (auto: float32
// on the CPU, bf16 with float32 master weights on CUDA).
torch::ScalarType parameter_dtype(Precision precision, const torch::Device& device);

}  // namespace svmoe
