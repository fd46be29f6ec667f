// svmoe status EXPERIMENT_DIR (docs/pipeline.md, "Watching a run"): where an experiment stands,
// readable while `svmoe run` or a Slurm DAG of it goes on. It reads what the run leaves in the
// directory: the config it ran with (pipeline/config.json), the step markers (pipeline_plan.h),
// each training run's metrics.jsonl (io/run_directory.h) and the lock files
// (util/directory_lock.h), and changes nothing: it takes no lock, so it never makes a writer wait
// or fail.
//   state     done | running | stopped (started, no live writer: interrupted or failed) |
//             waiting (not started) | will rerun (its settings, an input or its output changed)
//   progress  training steps: the last logged step of the run, or for the experts step the
//             experts done and the running experts' steps
//   ETA       (steps left) x (tokens a step) / (the last logged tokens/s), for running training steps
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace svmoe {

struct StepStatus {
  std::string name, stage;
  std::string state;
  std::string progress;               // "120/400 steps", "3/8 experts done", or ""
  std::optional<double> loss;         // the last logged training loss
  std::optional<double> eta_seconds;  // a running training step's time left
  std::string detail;                 // who writes it (pid, host) or why it runs again
};

// IoError where the directory holds no pipeline/config.json (svmoe run never started there).
std::vector<StepStatus> experiment_status(const std::filesystem::path& experiment_dir);

// The table `svmoe status` prints.
std::string status_text(const std::filesystem::path& experiment_dir, const std::vector<StepStatus>& steps);

}  // namespace svmoe
