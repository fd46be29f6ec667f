// svmoe run -c CONFIG: the whole recipe, every step the config names, in one experiment
// directory; re-running skips what is done, resumes what was interrupted and re-runs what changed.
#include <iostream>
#include <optional>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/stages/pipeline_run.h"
#include "svmoe/train/distributed.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/files.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace fs = std::filesystem;
namespace {
struct RunOptions {
  ConfigOptions config;
  std::string dir, from;
  std::vector<std::string> only;
  bool dry_run = false, plan_tsv = false, reset_changed = false;
  std::int64_t expert = -1;
};
}  // namespace

void add_run_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "run", "the whole recipe from one config: prepare, experts, merge, routers, the five models, eval, report");
  auto options = std::make_shared<RunOptions>();
  add_config_options(*command, options->config);
  command->add_option("--dir", options->dir, "the experiment directory (run.dir)");
  command
      ->add_option("--only", options->only,
                   "run only this step (or a stage's steps, e.g. finetune); repeatable; its inputs must be done")
      ->delimiter(',');
  command->add_option("--from", options->from, "run this step (or stage) and every step after it again");
  command->add_flag("--dry-run", options->dry_run, "print the plan (what each step would do, and why) and exit");
  command->add_flag("--plan-tsv", options->plan_tsv,
                    "print the plan as tab-separated lines (step, stage, action, tasks, needs, output) and exit");
  command->add_flag("--reset-changed", options->reset_changed,
                    "remove the outputs of steps that must run again from scratch, and exit (before a Slurm DAG)");
  command->add_option("--expert", options->expert, "with --only experts: train only this expert (a Slurm array task)");
  command->callback([options] {
    install_stop_handlers();  // from the start: a signal while loading still ends in a clean stop
    ConfigTree config(default_config());
    const Json dir = options->dir.empty() ? Json() : Json(options->dir);
    if (!resolve_config(options->config, {{"run.dir", dir, "--dir"}}, config)) return;
    const RuntimeSettings runtime = parse_runtime_settings(config);
    const RunSettings run = parse_run_settings(config);
    const std::vector<PipelineStep> steps = pipeline_steps(config);
    // One writer per experiment: a whole run (or --reset-changed) holds its directory alone; the
    // single-step processes of a Slurm DAG (--only, --expert, several ranks) share it, and each
    // stage locks its own output (util/directory_lock.h). --dry-run and --plan-tsv only read.
    std::optional<DirectoryLock> lock;
    if (!options->dry_run && !options->plan_tsv) {
      const bool single_steps =
          !options->only.empty() || options->expert >= 0 || detect_distributed_environment().world_size > 1;
      lock.emplace(DirectoryLock::acquire(
          run.dir, "run", single_steps && !options->reset_changed ? LockMode::kShared : LockMode::kExclusive));
    }
    const std::vector<PlannedStep> plan = plan_pipeline(steps, run.dir, {options->only, options->from});
    if (options->plan_tsv) {
      std::cout << plan_tsv(plan) << std::flush;
      return;
    }
    std::cout << "svmoe run: " << run.dir.string() << "\n" << plan_text(plan) << std::flush;
    if (options->dry_run) return;
    if (options->reset_changed) {
      reset_changed_steps(plan, run.dir);
      return;
    }
    if (detect_distributed_environment().rank == 0) {
      const ExperimentDirectory experiment(run.dir);
      fs::create_directories(experiment.pipeline());
      write_file_atomically(experiment.recorded_config(), config.dump() + "\n");
    }
    const PipelineResult result = run_pipeline(plan, run.dir, runtime, {options->expert});
    if (result.interrupted) throw ExitRequest{kExitRequeue};
    const auto tables = eval_tables_file(ExperimentDirectory(run.dir).eval());
    if (fs::exists(tables) && options->only.empty()) {
      std::cout << "\n"
                << read_text_file(tables) << "\nThe tables: " << tables.string()
                << "\nThe report: " << ExperimentDirectory(run.dir).report().string() << " (open it in a browser)\n"
                << std::flush;
    }
  });
}

}  // namespace svmoe::cli
