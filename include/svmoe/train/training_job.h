// What every training stage sets up alike (SPEC.md §4, stages 1, 3 and 4): the device and the
// data-parallel group, the model (loaded or initialised) and its data, and the final save.
#pragma once

#include <filesystem>

#include "svmoe/config/settings.h"
#include "svmoe/io/dataset_directory.h"
#include "svmoe/train/trainer.h"

namespace svmoe {

// Where a training stage runs: its device (cuda:LOCAL_RANK when data parallel on GPUs) and the
// data-parallel group (of one when not launched by torchrun or srun).
struct TrainingContext {
  torch::Device device = torch::kCPU;
  ProcessGroup group;
};
TrainingContext start_training(const RuntimeSettings& runtime);

// A job for `model_dir` (its weights, or initialised with `init: random`) on `shards`, to train in
// `output`; the caller sets the objective and the training sources.
TrainingJob training_job(const std::filesystem::path& model_dir, ModelInit init, const DatasetShards& shards,
                         const std::filesystem::path& output, const RuntimeSettings& runtime,
                         const TrainingContext& context);

// Writes the trained model of a finished run to OUTPUT/final/ (rank 0; the others wait).
void save_final_model(TrainingJob& job);

}  // namespace svmoe
