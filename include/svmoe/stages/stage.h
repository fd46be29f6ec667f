// The stages (SPEC.md §4; docs/pipeline.md): the one table of how each is parsed from the
// experiment config and run. A stage's subcommand (cli/config_commands.cpp) and svmoe run's
// step of that stage (stages/pipeline_run.cpp) both call run_stage, so a stage runs one way
// whichever asked; a new stage is a case in run_stage's switch (no default: the compiler lists
// it) plus a cli row and, for svmoe run, an add_* step in stages/pipeline.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

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

struct StageRequest {
  RuntimeSettings runtime;
  std::string train_section;  // where the `train` overrides come from (svmoe run's base: run.pretrain_base)
  std::optional<std::int64_t> only_expert;  // train-experts: this expert alone (svmoe run --expert)
};

struct StageOutcome {
  bool interrupted = false;  // a training stage stopped by a signal after its checkpoint
  std::string summary;       // what it shows at its end: prepare's Tables 1 and 4, report's path
};

// Parses the stage's settings from `config` and runs it. A training stage starts the device and
// process group in `training` when it is empty (svmoe run keeps one for all its steps).
StageOutcome run_stage(Stage stage, const ConfigTree& config, const StageRequest& request,
                       std::optional<TrainingContext>& training);

}  // namespace svmoe
