#include "svmoe/stages/memory_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "svmoe/config/settings.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/pipeline.h"
#include "svmoe/train/memory_plan.h"

namespace svmoe {
namespace {

std::string gigabytes(double bytes) { return fmt::format("{:.1f}", bytes / (1024.0 * 1024.0 * 1024.0)); }
std::string billions(std::int64_t count) {
  return count >= 100'000'000 ? fmt::format("{:.2f}B", count / 1e9) : fmt::format("{:.2f}M", count / 1e6);
}

}  // namespace

// svmoe plan: the experiment's training steps as svmoe run lays them out, each planned
// (train/memory_plan.h) on the model it trains: the base's architecture for the base, the
// experts and Dense, the merged MoE's (as merge would build it, without reading weights) for
// the router and the MoE models. Only the fine-tunes run on every rank (data parallel); the
// experts are array tasks of one rank each and the router trains on one rank.
std::string memory_report(const ConfigTree& experiment, const GpuBudget& budget) {
  std::ostringstream out;
  const RunSettings run = parse_run_settings(experiment);
  const std::vector<PipelineStep> steps = pipeline_steps(experiment);
  const ModelConfig base = read_model_config(run.base_model);
  const ModelConfig moe =
      merged_moe_config(base, parse_prepare_settings(experiment, PathsFrom::kRunLayout).num_subdomains,
                        parse_merge_settings(experiment, PathsFrom::kRunLayout));
  const double usable = budget.gpu_memory_gb * budget.usable * 1024.0 * 1024.0 * 1024.0;

  out << fmt::format("svmoe plan: GiB per GPU for each training step ({} GiB GPUs, {:.0f}% usable: {} GiB)\n",
                     budget.gpu_memory_gb, budget.usable * 100, gigabytes(usable));
  std::size_t name_width = 9;
  for (const auto& step : steps) name_width = std::max(name_width, step.name.size());
  const std::string row =
      "{:<" + std::to_string(name_width) + "} {:>5} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9} {:>11} {:>8}  {}\n";
  out << fmt::format(fmt::runtime(row), "step", "ranks", "micro", "parameters", "trained", "weights", "gradients",
                     "optimizer", "activations", "total", "fits");
  std::vector<std::pair<std::string, std::string>> notes;  // steps, what they need and the advice
  for (const auto& step : steps) {
    if (!step.is_training()) continue;
    const TrainSettings& train = *train_settings_of(step.inputs);
    const ModelConfig& model = step.trains_moe ? moe : base;
    const bool routers_only = step.stage == Stage::kTrainRouter;
    const int ranks = step.stage == Stage::kFinetune ? budget.world_size : 1;
    const MemoryPlan plan = plan_memory(model, train, ranks, routers_only);
    const auto advice = memory_advice(plan, model, train, routers_only, usable);
    const std::string micro =
        fmt::format("{}x{}{}", train.micro_batch, train.sequence_length, train.zero_stage >= 1 ? " Z1" : "");
    out << fmt::format(fmt::runtime(row), step.name, ranks, micro, billions(plan.parameters),
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
  out << "\nmicro: sequences x tokens of a micro-batch (Z1: ZeRO-1); weights and gradients in the "
         "compute dtype, the optimizer state float32 (moments, and master weights under bf16_mixed).\n";
  for (const auto& [names, body] : notes) {
    out << "\n" << names << (names.find(',') == std::string::npos ? " needs " : " need ") << body << "\n";
  }
  return out.str();
}

}  // namespace svmoe
