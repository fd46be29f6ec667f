// svmoe plan -c CONFIG: the GPU memory each rank of each training step of `svmoe run` will
// need, before anything runs, and what to change where it does not fit (docs/training.md).
#include <fmt/format.h>

#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/pipeline.h"
#include "svmoe/train/memory_plan.h"

namespace svmoe::cli {
namespace {
struct PlanOptions {
  ConfigOptions config;
  int world_size = 8;
  double gpu_memory_gb = 80;
  double usable = 0.9;
};

std::string gigabytes(double bytes) { return fmt::format("{:.1f}", bytes / (1024.0 * 1024.0 * 1024.0)); }
std::string billions(std::int64_t count) {
  return count >= 100'000'000 ? fmt::format("{:.2f}B", count / 1e9) : fmt::format("{:.2f}M", count / 1e6);
}
}  // namespace

void add_plan_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "plan", "the GPU memory each training step of svmoe run needs per rank, and what to change if it does not fit");
  auto options = std::make_shared<PlanOptions>();
  add_config_options(*command, options->config);
  command
      ->add_option("--world-size", options->world_size,
                   "data-parallel GPUs of the fine-tuning steps (base, dense, btx*, svmoe*; default 8); the "
                   "experts and the router run on one GPU each, as scripts/slurm/pipeline.sh runs them")
      ->check(CLI::Range(1, 1 << 20));
  command->add_option("--gpu-memory", options->gpu_memory_gb, "memory of one GPU in GiB (default 80)")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--usable", options->usable,
                   "the fraction of it svmoe may plan for; the rest is CUDA's context, the allocator's slack and "
                   "communication buffers (default 0.9)")
      ->check(CLI::Range(0.1, 1.0));
  command->callback([options] {
    ConfigTree config(default_config());
    if (!resolve_config(options->config, {}, config)) return;
    const RunSettings run = parse_run_settings(config);
    const std::vector<PipelineStep> steps = pipeline_steps(config);
    const ModelConfig base = read_model_config(run.base_model / "config.json");
    const ConfigTree& resolved = steps.front().config;
    const ModelConfig moe =
        merged_moe_config(base, parse_prepare_settings(resolved).num_subdomains, parse_merge_settings(resolved));
    const double usable = options->gpu_memory_gb * options->usable * 1024.0 * 1024.0 * 1024.0;

    std::cout << fmt::format("svmoe plan: GiB per GPU for each training step ({} GiB GPUs, {:.0f}% usable: {} GiB)\n",
                             options->gpu_memory_gb, options->usable * 100, gigabytes(usable));
    const std::string row = "{:<9} {:>5} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9} {:>11} {:>8}  {}\n";
    std::cout << fmt::format(fmt::runtime(row), "step", "ranks", "micro", "parameters", "trained", "weights",
                             "gradients", "optimizer", "activations", "total", "fits");
    std::vector<std::pair<std::string, std::string>> notes;  // steps, what they need and the advice
    for (const auto& step : steps) {
      if (!step.is_training()) continue;
      const TrainSettings train = parse_train_settings(step.config, step.train_section);
      const ModelConfig& model = step.trains_moe ? moe : base;
      const bool routers_only = step.stage == "train-router";
      const int ranks = step.stage == "finetune" ? options->world_size : 1;
      const MemoryPlan plan = plan_memory(model, train, ranks, routers_only);
      const auto advice = memory_advice(plan, model, train, routers_only, usable);
      const std::string micro =
          fmt::format("{}x{}{}", train.micro_batch, train.sequence_length, train.zero_stage >= 1 ? " Z1" : "");
      std::cout << fmt::format(fmt::runtime(row), step.name, ranks, micro, billions(plan.parameters),
                               billions(plan.trained_parameters), gigabytes(plan.weights), gigabytes(plan.gradients),
                               gigabytes(plan.optimizer_state), gigabytes(plan.activations), gigabytes(plan.total()),
                               advice.empty() ? "yes" : "NO");
      if (!advice.empty()) {
        // Steps with the same needs and advice (the four MoE models) share one note.
        std::string body = gigabytes(plan.total()) + " GiB of " + gigabytes(usable) + ":";
        for (const auto& line : advice) body += "\n  - " + line;
        if (!notes.empty() && notes.back().second == body) {
          notes.back().first += ", " + step.name;
        } else {
          notes.emplace_back(step.name, body);
        }
      }
    }
    std::cout << "\nmicro: sequences x tokens of a micro-batch (Z1: ZeRO-1); weights and gradients in the "
                 "compute dtype, the optimizer state float32 (moments, and master weights under bf16_mixed).\n";
    for (const auto& [names, body] : notes) {
      std::cout << "\n" << names << (names.find(',') == std::string::npos ? " needs " : " need ") << body << "\n";
    }
    std::cout << std::flush;
  });
}

}  // namespace svmoe::cli
