// The stages (SPEC.md §4; docs/pipeline.md): what each runs on (its typed inputs), how a
// subcommand parses them from its config, and how each is run. A stage's subcommand
// (cli/config_options.cpp) parses its inputs with parse_stage_inputs; svmoe run builds each
// step's inputs from the experiment's settings parsed once (stages/pipeline.cpp); both call
// run_stage, so a stage runs one way whichever asked. A new stage is an enum value, an inputs
// struct in StageInputs (in the same order), a case in parse_stage_inputs' switch and an overload
// in run_stage's visit (the compiler lists both), a cli row and, for svmoe run, an add_* step.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/enums.h"
#include "svmoe/config/settings.h"

namespace svmoe {

struct TrainingContext;  // train/training_job.h

enum class Stage { kPrepare, kFinetune, kTrainExperts, kMerge, kTrainRouter, kEval, kReport };
template <>
struct EnumNames<Stage> {
  static constexpr std::array<const char*, 7> names = {"prepare",      "finetune", "train-experts", "merge",
                                                       "train-router", "eval",     "report"};
};

// Stages that train (and so resume, take a device and a process group, and stop on signals).
bool is_training_stage(Stage stage);
// The config section a stage's settings come from (prepare, finetune, train_experts, merge,
// train_router, eval, report).
std::string settings_section(Stage stage);
// The section whose `train` keys override `train` for a training stage run on its own: its
// settings section ("" for a stage that does not train).
std::string own_train_section(Stage stage);

// Each stage's inputs: its section's settings and, for a training stage, the `train` section
// as its own keys resolve it (parse_train_settings).
struct PrepareStageInputs {
  PrepareSettings prepare;
  Json recorded_config;  // what the dataset's manifest records as the config it was prepared with
};
struct FinetuneStageInputs {
  FinetuneSettings finetune;
  TrainSettings train;
};
struct TrainExpertsStageInputs {
  TrainExpertsSettings train_experts;
  TrainSettings train;
};
struct MergeStageInputs {
  MergeSettings merge;
};
struct TrainRouterStageInputs {
  TrainRouterSettings train_router;
  TrainSettings train;
};
struct EvalStageInputs {
  EvalSettings eval;
};
struct ReportStageInputs {
  ReportSettings report;
  EvalSettings eval;  // where the eval's tables are (the report shows them)
};
// In Stage's order: stage_of(inputs) is its index.
using StageInputs = std::variant<PrepareStageInputs, FinetuneStageInputs, TrainExpertsStageInputs, MergeStageInputs,
                                 TrainRouterStageInputs, EvalStageInputs, ReportStageInputs>;
static_assert(std::variant_size_v<StageInputs> == EnumNames<Stage>::names.size(), "one inputs struct per Stage");

Stage stage_of(const StageInputs& inputs);
// A training stage's `train` settings; null for a stage that does not train.
const TrainSettings* train_settings_of(const StageInputs& inputs);

// A stage's inputs as its subcommand reads them from `config` (its own `STAGE.train` keys over
// `train`), every rule checked.
StageInputs parse_stage_inputs(Stage stage, const ConfigTree& config);

struct StageRequest {
  RuntimeSettings runtime;
  std::optional<std::int64_t> only_expert;  // train-experts: this expert alone (svmoe run --expert)
};

struct StageOutcome {
  bool interrupted = false;  // a training stage stopped by a signal after its checkpoint
  std::string summary;       // what it shows at its end: prepare's Tables 1 and 4, report's path
};

// Runs the stage on its inputs. A training stage starts the device and process group in
// `training` when it is empty (svmoe run keeps one for all its steps).
StageOutcome run_stage(const StageInputs& inputs, const StageRequest& request,
                       std::optional<TrainingContext>& training);

}  // namespace svmoe
