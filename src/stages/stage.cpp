#include "svmoe/stages/stage.h"

#include <stdexcept>

#include "svmoe/stages/evaluate.h"
#include "svmoe/stages/finetune.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/stages/report.h"
#include "svmoe/stages/train_experts.h"
#include "svmoe/stages/train_router.h"
#include "svmoe/train/training_job.h"

namespace svmoe {

bool is_training_stage(Stage stage) {
  switch (stage) {
    case Stage::kFinetune:
    case Stage::kTrainExperts:
    case Stage::kTrainRouter:
      return true;
    case Stage::kPrepare:
    case Stage::kMerge:
    case Stage::kEval:
    case Stage::kReport:
      return false;
  }
  return false;
}

std::string settings_section(Stage stage) {
  switch (stage) {
    case Stage::kPrepare:
      return "prepare";
    case Stage::kFinetune:
      return "finetune";
    case Stage::kTrainExperts:
      return "train_experts";
    case Stage::kMerge:
      return "merge";
    case Stage::kTrainRouter:
      return "train_router";
    case Stage::kEval:
      return "eval";
    case Stage::kReport:
      return "report";
  }
  return "";
}

std::string own_train_section(Stage stage) { return is_training_stage(stage) ? settings_section(stage) : ""; }

Stage stage_of(const StageInputs& inputs) { return static_cast<Stage>(inputs.index()); }

const TrainSettings* train_settings_of(const StageInputs& inputs) {
  if (const auto* finetune = std::get_if<FinetuneStageInputs>(&inputs)) return &finetune->train;
  if (const auto* experts = std::get_if<TrainExpertsStageInputs>(&inputs)) return &experts->train;
  if (const auto* router = std::get_if<TrainRouterStageInputs>(&inputs)) return &router->train;
  return nullptr;
}

StageInputs parse_stage_inputs(Stage stage, const ConfigTree& config) {
  const auto train = [&] { return parse_train_settings(config, own_train_section(stage)); };
  switch (stage) {
    case Stage::kPrepare: {
      // The dataset records the config it was prepared with, less the unrelated forward check.
      Json recorded = config.root();
      recorded.erase("forward");
      return PrepareStageInputs{parse_prepare_settings(config), recorded};
    }
    case Stage::kFinetune:
      return FinetuneStageInputs{parse_finetune_settings(config), train()};
    case Stage::kTrainExperts:
      return TrainExpertsStageInputs{parse_train_experts_settings(config), train()};
    case Stage::kMerge:
      return MergeStageInputs{parse_merge_settings(config)};
    case Stage::kTrainRouter:
      return TrainRouterStageInputs{parse_train_router_settings(config), train()};
    case Stage::kEval:
      return EvalStageInputs{parse_eval_settings(config)};
    case Stage::kReport:
      return ReportStageInputs{parse_report_settings(config), parse_eval_settings(config)};
  }
  throw std::logic_error("parse_stage_inputs: a Stage without a case");
}

namespace {

// One overload per alternative of StageInputs: a stage left out is a compile error in std::visit.
struct StageRunner {
  const StageRequest& request;
  std::optional<TrainingContext>& training;

  StageOutcome operator()(const PrepareStageInputs& in) const {
    const PrepareResult result = run_prepare(in.prepare, request.runtime, in.recorded_config);
    return {false, "\nTable 1: tokens per subdomain and split\n\n" + result.table1_markdown +
                       "\nTable 4: categories of each subdomain\n\n" + result.table4_markdown};
  }
  StageOutcome operator()(const FinetuneStageInputs& in) const {
    return {run_finetune(in.finetune, in.train, request.runtime, started()).interrupted, ""};
  }
  StageOutcome operator()(const TrainExpertsStageInputs& in) const {
    TrainExpertsSettings settings = in.train_experts;
    if (request.only_expert) settings.experts = {*request.only_expert};
    return {run_train_experts(settings, in.train, request.runtime, started()).interrupted, ""};
  }
  StageOutcome operator()(const MergeStageInputs& in) const {
    run_merge(in.merge, request.runtime);
    return {};
  }
  StageOutcome operator()(const TrainRouterStageInputs& in) const {
    return {run_train_router(in.train_router, in.train, request.runtime, started()).interrupted, ""};
  }
  StageOutcome operator()(const EvalStageInputs& in) const {
    run_eval(in.eval, request.runtime);
    return {};
  }
  StageOutcome operator()(const ReportStageInputs& in) const {
    return {false, run_report(in.report, in.eval, request.runtime).string() + "\n"};
  }

  // Training stages share one device and process group per process (a second rendezvous would
  // wait for ranks that have moved on).
  TrainingContext& started() const {
    if (!training) training = start_training(request.runtime);
    return *training;
  }
};

}  // namespace

StageOutcome run_stage(const StageInputs& inputs, const StageRequest& request,
                       std::optional<TrainingContext>& training) {
  return std::visit(StageRunner{request, training}, inputs);
}

}  // namespace svmoe
