// run.models: the stage-4 models of the tables (docs/pipeline.md). A model is Dense, or an MoE
// that stage 2 builds by a merge method (BTX in the paper), with or without stage 3's TF-IDF
// router training (SvMoE), fine-tuned with or without the load-balancing term:
//   dense | METHOD[_svmoe[_LOSS]][_lb], where BTX's two are spelt as the paper's: btx, svmoe (+ _lb).
// A router trained with `_LOSS` (soft_cross_entropy, softmax_then_cross_entropy) uses that
// reading of the stage-3 loss; without it, train_router.loss's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

struct RunModel {
  bool dense = false;
  MergeMethod method = MergeMethod::kBtx;  // an MoE's construction (stage 2)
  bool supervised_router = false;          // stage 3 trains its routers (SvMoE)
  bool load_balanced = false;              // stage 4 adds the LB term (run.lb_method)
  std::optional<RouterLoss> router_loss;   // stage 3's loss, if named; else train_router.loss

  bool operator==(const RunModel& other) const {
    return dense == other.dense && method == other.method && supervised_router == other.supervised_router &&
           load_balanced == other.load_balanced && router_loss == other.router_loss;
  }
};

std::string run_model_name(const RunModel& model);
std::optional<RunModel> run_model_from_name(std::string_view name);
// Every name run.models accepts: dense, then each method's eight (with and without LB: the plain
// MoE, and SvMoE with the configured loss or either loss named).
std::vector<std::string> run_model_names();
// The paper's five: dense, btx, btx_lb, svmoe, svmoe_lb.
std::vector<RunModel> paper_models();

}  // namespace svmoe
