// svmoe run: the recipe (SPEC.md §2-§5) as one pipeline of steps in one experiment directory.
// prepare -> [base] -> experts -> merge -> router, then stage 4's models (dense from the base,
// btx* from the merged MoE, svmoe* from the router's), then eval and report.
//
// Each step records the settings it ran with in a marker (RUN_DIR/pipeline/STEP.json: the
// settings, a hash of them and of its inputs' hashes, started | done). A run skips a step done
// with the same hash, resumes one that was started with it (the stages resume themselves), and
// runs again, from scratch, a step whose hash changed: its settings or an input's changed. So
// changing one fine-tuning key re-runs the fine-tuned models, eval and report, nothing else.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/settings.h"

namespace svmoe {

struct PipelineStep {
  std::string name;  // prepare, base, experts, merge, router, dense, btx, btx_lb, svmoe, svmoe_lb, eval, report
  std::string
      stage;  // the subcommand it runs: prepare | finetune | train-experts | merge | train-router | eval | report
  std::string train_section;       // training steps: the section whose `train` keys override `train`
  std::vector<std::string> needs;  // the steps whose outputs it reads
  std::filesystem::path output;    // what it writes (removed when it must run again from scratch)
  ConfigTree config;               // the experiment's config with this step's paths set
  Json settings = Json::object();  // {key path: value}: the settings its result depends on
  std::string hash;                // of `settings` and the needs' hashes
  std::int64_t tasks = 1;          // independent tasks (experts: one per subdomain, a Slurm array)
  bool trains_moe = false;         // its model is the merged MoE (router, btx*, svmoe*)

  bool is_training() const { return stage == "finetune" || stage == "train-experts" || stage == "train-router"; }
};

// The steps of the experiment `config` names (run.dir, run.models, ...), in an order that
// runs every step after its needs.
std::vector<PipelineStep> pipeline_steps(const ConfigTree& config);

enum class StepAction {
  kSkip,         // done with the same settings
  kRun,          // never started
  kResume,       // started with the same settings, not finished
  kRerun,        // its settings or an input changed (or --from): output removed, run from scratch
  kNotSelected,  // left out by --only
};
const char* step_action_name(StepAction action);

struct PlannedStep {
  const PipelineStep* step = nullptr;
  StepAction action = StepAction::kSkip;
  std::string reason;  // why it runs (the changed keys, the input that changed, ...)
  // Its output must be removed before it runs (a rerun, selected or not): what
  // reset_changed_steps removes.
  bool from_scratch = false;
};

struct PipelineSelection {
  std::vector<std::string> only;  // step names, or a stage's name for all its steps ("finetune"); empty: all
  std::string from;               // run this step (or stage) and everything after it again
};

// What a run would do, from the markers in RUN_DIR/pipeline/. Throws ConfigError for an
// unknown step name, a selected step whose needs are not done, or an output with no marker
// (svmoe run did not write it: it never removes what it did not write).
std::vector<PlannedStep> plan_pipeline(const std::vector<PipelineStep>& steps, const std::filesystem::path& dir,
                                       const PipelineSelection& selection);

// The plan as a table for people (--dry-run) or as tab-separated lines for scripts:
// name, stage, action, tasks, needs (comma-separated, "-" for none), output.
std::string plan_text(const std::vector<PlannedStep>& plan);
std::string plan_tsv(const std::vector<PlannedStep>& plan);

// Removes the outputs and markers of the steps the plan re-runs (what a run does first;
// `svmoe run --reset-changed` does only this, before a Slurm DAG is submitted).
void reset_changed_steps(const std::vector<PlannedStep>& plan, const std::filesystem::path& dir);

struct PipelineOptions {
  std::int64_t expert = -1;  // with --only experts: train this one expert (a Slurm array task)
};

struct PipelineResult {
  std::vector<std::string> ran;  // steps run (to the end) by this call
  bool interrupted = false;      // a training step stopped for a signal after checkpointing
};

PipelineResult run_pipeline(const std::vector<PlannedStep>& plan, const std::filesystem::path& dir,
                            const RuntimeSettings& runtime, const PipelineOptions& options = {});

// RUN_DIR/pipeline/STEP.json
std::filesystem::path step_marker_path(const std::filesystem::path& dir, const std::string& step);

}  // namespace svmoe
