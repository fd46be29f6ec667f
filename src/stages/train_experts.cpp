#include "svmoe/stages/train_experts.h"

#include <spdlog/spdlog.h>

#include "svmoe/stages/finetune.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;

fs::path expert_directory(const fs::path& output, std::int64_t expert) {
  return output / ("expert_" + std::to_string(expert));
}

TrainExpertsResult run_train_experts(const TrainExpertsSettings& s, const TrainSettings& train,
                                     const RuntimeSettings& runtime, const TrainingContext& context) {
  std::vector<std::int64_t> experts = s.experts;
  if (experts.empty()) {
    const DatasetShards all = dataset_shards(s.dataset, {});
    for (std::int64_t n = 0; n < static_cast<std::int64_t>(all.train.size()); ++n) experts.push_back(n);
  }
  TrainExpertsResult result;
  for (const auto n : experts) {
    const fs::path done = expert_directory(s.output, n);
    if (fs::exists(done / "config.json")) {
      spdlog::info("train-experts: expert {} is already trained ({}): skipped", n, done.string());
      result.skipped.push_back(n);
      continue;
    }
    FinetuneSettings expert;
    expert.model = s.base_model;
    expert.init = s.init;
    expert.dataset = s.dataset;
    expert.subdomains = {n};
    expert.output = s.output / "runs" / ("expert_" + std::to_string(n));
    spdlog::info("train-experts: expert {} on subdomain {}", n, n);
    const TrainResult trained = run_finetune(expert, train, runtime, context);
    if (trained.interrupted) {
      result.interrupted = true;
      return result;
    }
    // The run's final model becomes the expert, in one rename.
    if (context.group.is_main()) {
      fs::create_directories(s.output);
      fs::rename(expert.output / "final", done);
      sync_directory(s.output);
    }
    context.group.barrier();
    result.trained.push_back(n);
  }
  return result;
}

}  // namespace svmoe
