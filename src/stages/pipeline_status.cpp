#include "svmoe/stages/pipeline_status.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/setting_table.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/stages/pipeline_plan.h"
#include "svmoe/stages/train_experts.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/progress.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// The config svmoe run ran with, its run.dir set to the directory asked about.
ConfigTree experiment_config(const fs::path& dir) {
  const fs::path recorded = ExperimentDirectory(dir).recorded_config();
  if (!fs::exists(recorded)) {
    throw IoError("'" + dir.string() + "' holds no pipeline/config.json: svmoe run has not started there",
                  "give the experiment directory (run.dir) of a started `svmoe run`; `svmoe run -c CONFIG "
                  "--dry-run` shows the plan of a config that has not run");
  }
  ConfigTree config(default_config());
  try {
    config.merge(Json::parse(read_text_file(recorded)), recorded.string());
  } catch (const Json::parse_error& e) {
    throw FormatError("'" + recorded.string() + "' is not valid JSON: " + e.what(),
                      "svmoe run writes it again when it starts");
  }
  config.set("run.dir", dir.string(), "svmoe status");
  return config;
}

// A training run's last logged step: its step, loss and the seconds a step takes, from the last
// metrics.jsonl line that has a training loss.
struct RunProgress {
  std::int64_t step = 0;
  std::optional<double> loss;
  std::optional<double> seconds_per_step;
};

RunProgress run_progress(const fs::path& run) {
  RunProgress progress;
  const auto lines = RunDirectory(run).read_metrics();
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!it->contains("loss") || !it->contains("step")) continue;  // a validation line
    progress.step = it->value("step", std::int64_t{0});
    progress.loss = it->at("loss").get<double>();
    const double tokens = it->value("tokens", 0.0), rate = it->value("tokens_per_s", 0.0);
    if (progress.step > 0 && tokens > 0 && rate > 0) progress.seconds_per_step = tokens / progress.step / rate;
    break;
  }
  return progress;
}

std::string describe(const LockHolder& holder) {
  return "pid " + holder.pid + " on " + holder.host + " (svmoe " + holder.purpose + ", since " + holder.started + ")";
}

// A step whose marker says started: running while a live process holds its output's lock (an
// expert's, for the experts step), else stopped.
void started_step_status(const PipelineStep& step, StepStatus& status) {
  std::vector<fs::path> locked = {step.output};
  const bool experts = step.stage == Stage::kTrainExperts;
  if (experts) {
    for (std::int64_t n = 0; n < step.tasks; ++n) locked.push_back(expert_directory(step.output, n));
  }
  std::vector<std::string> writers;
  for (const auto& path : locked) {
    if (const auto holder = read_lock_holder(path); holder && holder->alive) writers.push_back(describe(*holder));
  }
  status.state = writers.empty() ? "stopped" : "running";
  // Interrupted (a signal, a kill, a time limit) or failed: the step's log says which.
  status.detail =
      writers.empty() ? "not running (interrupted or failed): run svmoe run again to go on" : writers.front();
  if (writers.size() > 1) status.detail += fmt::format(" and {} more", writers.size() - 1);
  if (!step.is_training()) return;

  const std::int64_t total = train_settings_of(step.inputs)->steps;
  if (!experts) {
    const RunProgress run = run_progress(step.output);
    status.progress = fmt::format("{}/{} steps", run.step, total);
    status.loss = run.loss;
    if (!writers.empty() && run.seconds_per_step) status.eta_seconds = (total - run.step) * *run.seconds_per_step;
    return;
  }
  // Experts: each one done is a model directory; the others train in their run directories,
  // one after another in one process or side by side as a Slurm array's tasks.
  std::int64_t done = 0, steps_left = 0, running = 0;
  std::optional<double> seconds_per_step;
  std::vector<std::string> training;
  for (std::int64_t n = 0; n < step.tasks; ++n) {
    if (fs::exists(model_config_file(expert_directory(step.output, n)))) {
      ++done;
      continue;
    }
    const RunProgress run = run_progress(expert_run_directory(step.output, n));
    steps_left += total - run.step;
    if (run.step > 0) {
      training.push_back(fmt::format("expert {} {}/{}", n, run.step, total));
      status.loss = run.loss;
      seconds_per_step = run.seconds_per_step;
    }
    const auto holder = read_lock_holder(expert_directory(step.output, n));
    if (holder && holder->alive) ++running;
  }
  status.progress = fmt::format("{}/{} experts done", done, step.tasks);
  for (const auto& t : training) status.progress += "; " + t;
  if (running > 0 && seconds_per_step) status.eta_seconds = steps_left * *seconds_per_step / running;
}

}  // namespace

std::vector<StepStatus> experiment_status(const fs::path& dir) {
  const ConfigTree config = experiment_config(dir);
  const std::vector<PipelineStep> steps = pipeline_steps(config);
  std::vector<StepStatus> statuses;
  for (const PlannedStep& planned : plan_pipeline(steps, dir, {})) {
    const PipelineStep& step = *planned.step;
    StepStatus status;
    status.name = step.name;
    status.stage = enum_name(step.stage);
    switch (planned.action) {
      case StepAction::kSkip:
        status.state = "done";
        if (step.is_training() && step.stage != Stage::kTrainExperts) {
          const RunProgress run = run_progress(step.output);
          status.progress = fmt::format("{} steps", run.step);
          status.loss = run.loss;
        }
        break;
      case StepAction::kResume:
        started_step_status(step, status);
        break;
      case StepAction::kRun:
      case StepAction::kNotSelected:
        status.state = "waiting";
        break;
      case StepAction::kRerun:
        status.state = "will rerun";
        status.detail = planned.reason;
        break;
    }
    statuses.push_back(std::move(status));
  }
  return statuses;
}

std::string status_text(const fs::path& dir, const std::vector<StepStatus>& steps) {
  std::size_t name_width = 4, progress_width = 8;
  for (const auto& s : steps) {
    name_width = std::max(name_width, s.name.size());
    progress_width = std::max(progress_width, s.progress.size());
  }
  std::ostringstream out;
  out << "svmoe status: " << dir.string() << "\n";
  const auto row = [&](const std::string& name, const std::string& stage, const std::string& state,
                       const std::string& progress, const std::string& loss, const std::string& eta,
                       const std::string& detail) {
    std::string line = fmt::format("{:<{}}  {:<13}  {:<10}  {:<{}}  {:>8}  {:>9}  {}", name, name_width, stage, state,
                                   progress, progress_width, loss, eta, detail);
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  };
  row("step", "stage", "state", "progress", "loss", "ETA", "");
  std::size_t done = 0;
  for (const auto& s : steps) {
    if (s.state == "done") ++done;
    row(s.name, s.stage, s.state, s.progress, s.loss ? fmt::format("{:.4f}", *s.loss) : "",
        s.eta_seconds ? format_duration(*s.eta_seconds) : "", s.detail);
  }
  out << fmt::format("{} of {} steps done\n", done, steps.size());
  return out.str();
}

}  // namespace svmoe
