#include "svmoe/stages/train_experts.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "svmoe/config/expert_coverage.h"
#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/stages/finetune.h"
#include "svmoe/train/trainer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;

TrainExpertsResult run_train_experts(const TrainExpertsSettings& s, const TrainSettings& train,
                                     const RuntimeSettings& runtime, const TrainingContext& context) {
  const std::int64_t subdomains = static_cast<std::int64_t>(dataset_shards(s.dataset, {}).train.size());
  const auto covered = expert_subdomains(s.coverage, subdomains);
  std::vector<std::int64_t> experts = s.experts;
  if (experts.empty()) {
    for (std::int64_t n = 0; n < static_cast<std::int64_t>(covered.size()); ++n) experts.push_back(n);
  }
  for (const auto n : experts) {
    if (n >= static_cast<std::int64_t>(covered.size())) {
      throw ConfigError("config key 'train_experts.experts' names expert " + std::to_string(n) + ", but coverage " +
                            enum_name(s.coverage) + " over the dataset's " + std::to_string(subdomains) +
                            " subdomains makes " + std::to_string(covered.size()) + " experts",
                        "give expert numbers from 0 to " + std::to_string(covered.size() - 1));
    }
  }
  TrainExpertsResult result;
  for (const auto n : experts) {
    const fs::path done = expert_directory(s.output, n);
    // One writer per expert (Slurm array tasks train different experts side by side).
    const std::optional<DirectoryLock> lock = lock_on_main_rank(done, "train-experts", context.group);
    if (fs::exists(model_config_file(done))) {
      spdlog::info("train-experts: expert {} is already trained ({}): skipped", n, done.string());
      result.skipped.push_back(n);
      continue;
    }
    FinetuneSettings expert;
    expert.model = s.base_model;
    expert.init = s.init;
    expert.dataset = s.dataset;
    expert.subdomains = covered[static_cast<std::size_t>(n)];
    expert.output = expert_run_directory(s.output, n);
    spdlog::info("train-experts: expert {} on subdomain(s) {}", n, fmt::join(expert.subdomains, ", "));
    const TrainResult trained = run_finetune(expert, train, runtime, context);
    if (trained.interrupted) {
      result.interrupted = true;
      return result;
    }
    // The run's final model becomes the expert, in one rename.
    if (context.group.is_main()) {
      fs::create_directories(s.output);
      fs::rename(RunDirectory(expert.output).final_model(), done);
      sync_directory(s.output);
    }
    context.group.barrier();
    result.trained.push_back(n);
  }
  return result;
}

}  // namespace svmoe
