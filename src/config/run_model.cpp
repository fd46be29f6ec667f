#include "svmoe/config/run_model.h"

namespace svmoe {

// The name is the model's directory under models/ and its row in the report: the merge method
// (btx is the default and, with a supervised router, is the paper's "svmoe"), then _svmoe for a
// supervised router on another merge, its loss reading, and _lb for the load-balancing loss.
std::string run_model_name(const RunModel& model) {
  if (model.dense) return "dense";
  const bool btx = model.method == MergeMethod::kBtx;
  std::string name = btx ? (model.supervised_router ? "svmoe" : "btx") : enum_name(model.method);
  if (!btx && model.supervised_router) name += "_svmoe";
  if (model.supervised_router && model.router_loss) name += std::string("_") + enum_name(*model.router_loss);
  if (model.load_balanced) name += "_lb";
  return name;
}

namespace {

// Every combination a name can stand for; the names are parsed by searching this list, so the
// parse can never disagree with run_model_name.
std::vector<RunModel> all_run_models() {
  std::vector<RunModel> models = {RunModel{true, MergeMethod::kBtx, false, false, std::nullopt}};
  std::vector<std::optional<RouterLoss>> losses = {std::nullopt};
  for (const RouterLoss loss : enum_values<RouterLoss>()) losses.emplace_back(loss);
  for (const MergeMethod method : enum_values<MergeMethod>()) {
    for (const bool lb : {false, true}) models.push_back({false, method, false, lb, std::nullopt});
    for (const auto& loss : losses) {
      for (const bool lb : {false, true}) models.push_back({false, method, true, lb, loss});
    }
  }
  return models;
}

}  // namespace

std::optional<RunModel> run_model_from_name(std::string_view name) {
  for (const RunModel& model : all_run_models()) {
    if (run_model_name(model) == name) return model;
  }
  return std::nullopt;
}

std::vector<std::string> run_model_names() {
  std::vector<std::string> names;
  for (const RunModel& model : all_run_models()) names.push_back(run_model_name(model));
  return names;
}

// The five rows of the paper's Tables 2 and 3 (SPEC.md section 6): Dense, BTX and SvMoE, each MoE
// with and without the LB term.
std::vector<RunModel> paper_models() {
  return {{true, MergeMethod::kBtx, false, false, std::nullopt},
          {false, MergeMethod::kBtx, false, false, std::nullopt},
          {false, MergeMethod::kBtx, false, true, std::nullopt},
          {false, MergeMethod::kBtx, true, false, std::nullopt},
          {false, MergeMethod::kBtx, true, true, std::nullopt}};
}

}  // namespace svmoe
