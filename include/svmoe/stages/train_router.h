// svmoe train-router (SPEC.md §4, stage 3, the SvMoE step): freeze everything but the L
// routers of a merged MoE and train them with L_SvMoE against the dataset's TF-IDF targets, on
// batches that mix all subdomains' training splits. Writes OUTPUT/final/ (an MoE directory like
// svmoe merge's) in which every weight but the routers is bit-identical to the input's.
#pragma once

#include "svmoe/config/settings.h"
#include "svmoe/train/training_job.h"

namespace svmoe {

TrainResult run_train_router(const TrainRouterSettings& settings, const TrainSettings& train,
                             const RuntimeSettings& runtime, const TrainingContext& context);

// Leaves requires_grad on for the routers (…block_sparse_moe.gate.weight) only; their count.
std::size_t train_only_routers(CausalLM& model);

}  // namespace svmoe
