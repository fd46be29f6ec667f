// svmoe run's plan. Each step records the settings it ran with in a marker
// (RUN_DIR/pipeline/STEP.json: the settings, a hash of them and of its inputs' hashes, started |
// done, and for a done step the fingerprint of its output). A run skips a step done with the
// same hash whose output still holds what it wrote, resumes one that was started with it (the
// stages resume themselves), and runs again, from scratch, a step whose hash changed (its
// settings or an input's changed) or whose output is missing or changed. So changing one fine-tuning key re-runs the
// fine-tuned models, eval and report, nothing else.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/stages/pipeline.h"

namespace svmoe {

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

// What an output held when its step was done: {relative path: {size, sha256 of a small file}}
// for each file ("." for an output that is a file). Files over kHashedFileLimit are recorded by
// size only, so that checking a plan reads a few kilobytes (config.json, index files,
// manifests), never the weights. Lock files and logs are left out (written around the step).
constexpr std::uintmax_t kHashedFileLimit = 1 << 20;
nlohmann::json output_fingerprint(const std::filesystem::path& output);
// Empty when `output` still holds what `fingerprint` recorded (files added since are allowed:
// the report writes into eval/); else the reason it must run again: "output missing: FILE" or
// "output changed since it was written: FILE".
std::string output_difference(const std::filesystem::path& output, const nlohmann::json& fingerprint);

// Records that `step` is started or done, with its settings and its needs' hashes (and, done,
// its output's fingerprint).
enum class StepState { kStarted, kDone };
void write_step_marker(const std::filesystem::path& dir, const PipelineStep& step,
                       const std::vector<const PipelineStep*>& needs, StepState state);

}  // namespace svmoe
