// svmoe finetune (SPEC.md §4): train a model as a causal LM on the training splits of some or
// all subdomains of a prepared dataset. A dense model on all of them from the base model is the
// paper's Dense baseline; an MoE model (svmoe merge's output, routers trained or not) is stage 4,
// with the load-balancing term none | switch | aux_free. `init: random` trains from the HF
// initialiser instead (a base model of one's own).
//
// This file also holds what every training stage sets up alike: device, ranks, model, data.
#pragma once

#include "svmoe/config/settings.h"
#include "svmoe/train/trainer.h"

namespace svmoe {

// Where a training stage runs: its device (cuda:LOCAL_RANK when data parallel on GPUs) and the
// data-parallel group (of one when not launched by torchrun or srun).
struct TrainingContext {
  torch::Device device = torch::kCPU;
  ProcessGroup group;
};
TrainingContext start_training(const RuntimeSettings& runtime);

TrainResult run_finetune(const FinetuneSettings& finetune, const TrainSettings& train, const RuntimeSettings& runtime,
                         const TrainingContext& context);

// The shards of `subdomains` (empty: all) of a dataset, checked against its manifest.
struct DatasetShards {
  std::vector<std::filesystem::path> train, valid;
  std::int64_t vocab_size = 0;
  std::filesystem::path tokenizer;  // the directory holding the dataset's tokenizer files
};
DatasetShards dataset_shards(const std::filesystem::path& dataset, const std::vector<std::int64_t>& subdomains);

// A job for `model_dir` (loaded, or initialised when `random_init`) on `shards`, to train in
// `output`; the caller sets the objective and the training sources.
TrainingJob training_job(const std::filesystem::path& model_dir, bool random_init, const DatasetShards& shards,
                         const std::filesystem::path& output, const RuntimeSettings& runtime,
                         const TrainingContext& context);

// Writes the trained model of a finished run to OUTPUT/final/ (rank 0; the others wait).
void save_final_model(TrainingJob& job);

}  // namespace svmoe
