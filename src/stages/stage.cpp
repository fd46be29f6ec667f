#include "svmoe/stages/stage.h"

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

StageOutcome run_stage(Stage stage, const ConfigTree& config, const StageRequest& request,
                       std::optional<TrainingContext>& training) {
  // Training stages share one device and process group per process (a second rendezvous would
  // wait for ranks that have moved on).
  if (is_training_stage(stage) && !training) training = start_training(request.runtime);
  const auto train_settings = [&] { return parse_train_settings(config, request.train_section); };
  StageOutcome outcome;
  switch (stage) {
    case Stage::kPrepare: {
      // The dataset records the config it was prepared with, less the unrelated forward check.
      Json recorded = config.root();
      recorded.erase("forward");
      const PrepareResult result = run_prepare(parse_prepare_settings(config), request.runtime, recorded);
      outcome.summary = "\nTable 1: tokens per subdomain and split\n\n" + result.table1_markdown +
                        "\nTable 4: categories of each subdomain\n\n" + result.table4_markdown;
      break;
    }
    case Stage::kFinetune:
      outcome.interrupted =
          run_finetune(parse_finetune_settings(config), train_settings(), request.runtime, *training).interrupted;
      break;
    case Stage::kTrainExperts: {
      TrainExpertsSettings settings = parse_train_experts_settings(config);
      if (request.only_expert) settings.experts = {*request.only_expert};
      outcome.interrupted = run_train_experts(settings, train_settings(), request.runtime, *training).interrupted;
      break;
    }
    case Stage::kMerge:
      run_merge(parse_merge_settings(config), request.runtime);
      break;
    case Stage::kTrainRouter:
      outcome.interrupted =
          run_train_router(parse_train_router_settings(config), train_settings(), request.runtime, *training)
              .interrupted;
      break;
    case Stage::kEval:
      run_eval(parse_eval_settings(config), request.runtime);
      break;
    case Stage::kReport:
      outcome.summary =
          run_report(parse_report_settings(config), parse_eval_settings(config), request.runtime).string() + "\n";
      break;
  }
  return outcome;
}

}  // namespace svmoe
