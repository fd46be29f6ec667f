// svmoe train-experts (SPEC.md §4, stage 1): for each subdomain n, start from the base dense
// model and train it as a causal LM on d_n's training split (validating on d_n's valid split),
// giving expert E_n in OUTPUT/expert_n/ (a Hugging Face Llama directory with the tokenizer).
// Each expert is an independent run (OUTPUT/runs/expert_n/, resumable), so on a cluster each
// can be one Slurm array task (--expert n). With train_experts.coverage: pairs, expert k is
// trained on the k-th pair of subdomains instead (config/expert_coverage.h; Monju's ensemble).
#pragma once

#include <vector>

#include "svmoe/config/settings.h"
#include "svmoe/train/training_job.h"

namespace svmoe {

struct TrainExpertsResult {
  std::vector<std::int64_t> trained;  // experts trained by this call
  std::vector<std::int64_t> skipped;  // already complete
  bool interrupted = false;
};

TrainExpertsResult run_train_experts(const TrainExpertsSettings& settings, const TrainSettings& train,
                                     const RuntimeSettings& runtime, const TrainingContext& context);

}  // namespace svmoe
