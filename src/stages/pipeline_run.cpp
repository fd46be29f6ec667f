#include "svmoe/stages/pipeline_run.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/stages/stage.h"
#include "svmoe/train/distributed.h"
#include "svmoe/train/training_job.h"
#include "svmoe/util/error.h"
#include "svmoe/util/progress.h"
#include "svmoe/util/signals.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// The step's work, as its subcommand does it (stages/stage.h); false when a signal stopped it.
bool execute_step(const PipelineStep& step, const RuntimeSettings& runtime, const PipelineOptions& options,
                  std::optional<TrainingContext>& training) {
  StageRequest request{runtime, std::nullopt};
  if (options.expert >= 0) request.only_expert = options.expert;
  const StageOutcome outcome = run_stage(step.inputs, request, training);
  if (!outcome.summary.empty()) spdlog::info("{}: {}", step.name, outcome.summary);
  return !outcome.interrupted;
}

// An experts step run as one array task is done when every expert is.
bool all_experts_written(const PipelineStep& step) {
  for (std::int64_t n = 0; n < step.tasks; ++n) {
    if (!fs::exists(model_config_file(expert_directory(step.output, n)))) return false;
  }
  return true;
}

}  // namespace

// The plan (stages/pipeline_plan.h) has already decided each step's action; this runs them in
// order. First it refuses what several processes (torchrun ranks, Slurm array tasks) cannot do
// safely: a reset from scratch, which would race with the other processes, and a non-training
// step, which runs on one process only. Then each step is marked started, run, and marked done,
// so that `svmoe status` and the next plan see where it stopped.
PipelineResult run_pipeline(const std::vector<PlannedStep>& plan, const fs::path& dir, const RuntimeSettings& runtime,
                            const PipelineOptions& options) {
  const DistributedEnvironment environment = detect_distributed_environment();
  const bool several_processes = environment.world_size > 1 || options.expert >= 0;
  std::vector<const PlannedStep*> work;
  for (const auto& p : plan) {
    if (p.action == StepAction::kSkip || p.action == StepAction::kNotSelected) continue;
    work.push_back(&p);
    if (several_processes && p.from_scratch) {
      throw UsageError("step '" + p.step->name + "' must run again from scratch (" + p.reason +
                           "), which one of several processes cannot do safely",
                       "run `svmoe run -c CONFIG --reset-changed` once first (scripts/slurm/pipeline.sh does)");
    }
    if (environment.world_size > 1 && !p.step->is_training()) {
      throw UsageError("step '" + p.step->name + "' (" + enum_name(p.step->stage) + ") runs as one process, not " +
                           std::to_string(environment.world_size),
                       "launch only training steps on several processes: svmoe run --only STEP");
    }
  }
  PipelineResult result;
  if (work.empty()) {
    spdlog::info("run: every step is done; nothing to run");
    return result;  // e.g. a requeued array task after the last expert finished
  }
  if (options.expert >= 0 && (work.size() != 1 || work[0]->step->stage != Stage::kTrainExperts)) {
    throw UsageError("--expert " + std::to_string(options.expert) + " is for the experts step alone",
                     "give --only experts with it");
  }
  if (options.expert >= 0 && options.expert >= work[0]->step->tasks) {
    throw UsageError("--expert " + std::to_string(options.expert) + " is out of range",
                     "this experiment has experts 0 to " + std::to_string(work[0]->step->tasks - 1));
  }
  // Rank 0 alone writes markers and removes outputs; the other ranks only train.
  const bool writer = environment.rank == 0;
  if (writer) reset_changed_steps(plan, dir);

  // Created by the first training step and kept for the next ones: the process group (and the
  // device) is set up once per process, not once per step.
  std::optional<TrainingContext> training;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < work.size(); ++i) {
    const PipelineStep& step = *work[i]->step;
    std::vector<const PipelineStep*> needs;
    for (const auto& need : step.needs) {
      for (const auto& p : plan) {
        if (p.step->name == need) needs.push_back(p.step);
      }
    }
    spdlog::info("run: step {}/{}: {} ({}, {}: {}) -> {}", i + 1, work.size(), step.name, enum_name(step.stage),
                 step_action_name(work[i]->action), work[i]->reason, step.output.string());
    if (writer) {
      // Only training steps resume; the others start over (their outputs appear atomically).
      if (work[i]->action == StepAction::kResume && !step.is_training()) fs::remove_all(step.output);
      write_step_marker(dir, step, needs, StepState::kStarted);
    }
    const auto step_start = std::chrono::steady_clock::now();
    if (!execute_step(step, runtime, options, training)) {
      spdlog::warn("run: stopped during {} after a checkpoint; run the same command again to resume", step.name);
      result.interrupted = true;
      return result;
    }
    // An array task trains one expert; the step is done only when the last task finds all of
    // them written (whichever task finishes last marks it).
    const bool done = options.expert < 0 || all_experts_written(step);
    if (writer && done) write_step_marker(dir, step, needs, StepState::kDone);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    spdlog::info("run: {} {} in {}", step.name, done ? "done" : "(this task's expert) done", format_duration(seconds));
    result.ran.push_back(step.name);
    if (stop_requested() && i + 1 < work.size()) {
      spdlog::warn("run: stopped after {}; run the same command again to go on", step.name);
      result.interrupted = true;
      return result;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("run: {} step(s) in {}", result.ran.size(), format_duration(seconds));
  return result;
}

}  // namespace svmoe
