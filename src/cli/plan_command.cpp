// svmoe plan -c CONFIG: the GPU memory each rank of each training step of `svmoe run` will
// need, before anything runs, and what to change where it does not fit (docs/training.md).
#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/stages/memory_report.h"

namespace svmoe::cli {
namespace {
struct PlanOptions {
  ConfigOptions config;
  GpuBudget budget;
};
}  // namespace

void add_plan_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "plan", "the GPU memory each training step of svmoe run needs per rank, and what to change if it does not fit");
  auto options = std::make_shared<PlanOptions>();
  add_config_options(*command, options->config);
  command
      ->add_option("--world-size", options->budget.world_size,
                   "data-parallel GPUs of the fine-tuning steps (base, dense, btx*, svmoe*; default 8); the "
                   "experts and the router run on one GPU each, as scripts/slurm/pipeline.sh runs them")
      ->check(CLI::Range(1, 1 << 20));
  command->add_option("--gpu-memory", options->budget.gpu_memory_gb, "memory of one GPU in GiB (default 80)")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--usable", options->budget.usable,
                   "the fraction of it svmoe may plan for; the rest is CUDA's context, the allocator's slack and "
                   "communication buffers (default 0.9)")
      ->check(CLI::Range(0.1, 1.0));
  command->callback([options] {
    ConfigTree config(default_config());
    if (!resolve_config(options->config, {}, config)) return;
    std::cout << memory_report(config, options->budget) << std::flush;
  });
}

}  // namespace svmoe::cli
