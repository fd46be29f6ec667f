// svmoe finetune (SPEC.md §4): train a model as a causal LM on the training splits of some or
// all subdomains of a prepared dataset. A dense model on all of them from the base model is the
// paper's Dense baseline; an MoE model (svmoe merge's output, routers trained or not) is stage 4,
// with the load-balancing term none | switch | aux_free. `init: random` trains from the HF
// initialiser instead (a base model of one's own).
#pragma once

#include "svmoe/config/settings.h"
#include "svmoe/train/training_job.h"

namespace svmoe {

TrainResult run_finetune(const FinetuneSettings& finetune, const TrainSettings& train, const RuntimeSettings& runtime,
                         const TrainingContext& context);

}  // namespace svmoe
