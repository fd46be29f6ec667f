// The directories of an experiment, the one owner of their layout (docs/pipeline.md, "The
// steps"). `svmoe run` lays an experiment out so; the stages run alone write
// where their settings say, and train-experts and eval keep the inner layout below.
//   EXPERIMENT/dataset/                   prepare (io/dataset_directory.h)
//   EXPERIMENT/base/                      the pretrained base, a run directory (io/run_directory.h)
//   EXPERIMENT/experts/expert_N/          train-experts: expert N, a Hugging Face directory
//   EXPERIMENT/experts/runs/expert_N/     where it trained, a run directory
//   EXPERIMENT/pair_experts/              the BTM row's pair experts, laid out as experts/
//   EXPERIMENT/moe[_METHOD]/              merge, one MoE per merge method
//   EXPERIMENT/router[_METHOD][_LOSS]/    train-router, a run directory
//   EXPERIMENT/models/NAME/               the fine-tune of the run.models row NAME, a run directory
//   EXPERIMENT/eval/                      eval: results.json, tables.md; report: report.html
//   EXPERIMENT/pipeline/                  svmoe run's record: config.json, STEP.json per step
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "svmoe/config/enums.h"

namespace svmoe {

// eval's output directory: the results every model got (eval/report.h reads them), the tables
// (Markdown, and CSV per split and for the few-shot accuracy), each model's expert selection.
inline std::filesystem::path eval_results_file(const std::filesystem::path& eval) { return eval / "results.json"; }
inline std::filesystem::path eval_tables_file(const std::filesystem::path& eval) { return eval / "tables.md"; }
inline std::filesystem::path eval_split_table_file(const std::filesystem::path& eval, const std::string& split) {
  return eval / ("table_" + split + ".csv");
}
inline std::filesystem::path eval_fewshot_table_file(const std::filesystem::path& eval) {
  return eval / "table_fewshot.csv";
}
inline std::filesystem::path eval_expert_selection_file(const std::filesystem::path& eval) {
  return eval / "expert_selection.csv";
}
// svmoe report's page where report.output does not say otherwise.
inline std::filesystem::path eval_report_file(const std::filesystem::path& eval) { return eval / "report.html"; }

class ExperimentDirectory {
 public:
  explicit ExperimentDirectory(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path dataset() const { return root_ / "dataset"; }
  std::filesystem::path base() const { return root_ / "base"; }
  std::filesystem::path experts() const { return root_ / "experts"; }
  std::filesystem::path pair_experts() const { return root_ / "pair_experts"; }
  std::filesystem::path moe(MergeMethod method) const { return root_ / method_step("moe", method); }
  // The routers of `method`'s MoE, trained with train_router.loss or, named by a row, another loss.
  std::filesystem::path router(MergeMethod method, std::optional<RouterLoss> loss = std::nullopt) const {
    return root_ / router_step(method, loss);
  }
  std::filesystem::path model(const std::string& name) const { return root_ / "models" / name; }
  std::filesystem::path eval() const { return root_ / "eval"; }
  std::filesystem::path report() const { return eval_report_file(eval()); }
  std::filesystem::path pipeline() const { return root_ / "pipeline"; }
  // The experiment's config as svmoe run last read it (what `svmoe status` plans from).
  std::filesystem::path recorded_config() const { return pipeline() / "config.json"; }
  // A step's marker: started or done, with its hash (stages/pipeline_plan.h).
  std::filesystem::path step_marker(const std::string& step) const { return pipeline() / (step + ".json"); }

  // A per-method step's (and directory's) name: merge, merge_naive, moe_drop_upcycling, ...
  static std::string method_step(const std::string& step, MergeMethod method) {
    return method == MergeMethod::kBtx ? step : step + "_" + enum_name(method);
  }
  // router, router_naive, router_softmax_then_cross_entropy, ...
  static std::string router_step(MergeMethod method, std::optional<RouterLoss> loss) {
    return method_step("router", method) + (loss ? std::string("_") + enum_name(*loss) : std::string());
  }

 private:
  std::filesystem::path root_;
};

// train-experts' output: expert N's Hugging Face directory, and the run directory it trained in.
inline std::filesystem::path expert_directory(const std::filesystem::path& experts, std::int64_t expert) {
  return experts / ("expert_" + std::to_string(expert));
}
inline std::filesystem::path expert_run_directory(const std::filesystem::path& experts, std::int64_t expert) {
  return experts / "runs" / ("expert_" + std::to_string(expert));
}

}  // namespace svmoe
