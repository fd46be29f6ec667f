// results.json, every raw number of svmoe eval (docs/eval.md), and the one place its fields are
// named: the eval writes it and writes its tables from it; svmoe report reads it back, as does
// scripts/paper/loss_study.py.
//
//   {"dataset": DIR, "splits": [SPLIT, ...],
//    "fewshot": {"items", "shot_file", "k", "seed", "prompt", "answers", "draw"}     (with items)
//    "models": [{"name", "path", "lb": yes|no|-, "moe": bool,
//                "ensemble": {"kind": "btm", "coverage", "weighting"}              (the BTM row)
//                "splits": {SPLIT: {"documents", "tokens", "ppl": STATS,
//                                   MoE models also: "cmr_1", "cmr_2", "s_rl": STATS,
//                                   "expert_counts": [[count]] and "expert_fraction": [[fraction]]
//                                   (layer x expert)}},
//                "fewshot": {"acc", "acc_norm", "items", "predictions": [{"label",
//                            "acc_prediction", "acc_norm_prediction", "log_likelihoods": [ll0, ll1]}]}}]}
//   STATS: {"mean", "std", "count"} over documents (PPL) or items (CMR_k, S_RL); mean and std
//   null when count is 0 (SPEC.md §5).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/enums.h"

namespace svmoe {

struct MetricStats {
  std::optional<double> mean, std;  // unset when count is 0
  std::uint64_t count = 0;
};

// The routing metrics of an MoE model on one split.
struct RoutingMetrics {
  MetricStats cmr_1, cmr_2, s_rl;
  std::vector<std::vector<std::int64_t>> expert_counts;  // [layer][expert]: top-k choices
  std::vector<std::vector<double>> expert_fraction;      // [layer][expert]: the counts' share
};

struct SplitMetrics {
  std::int64_t documents = 0;
  std::int64_t tokens = 0;  // predicted positions
  MetricStats ppl;
  std::optional<RoutingMetrics> routing;  // MoE models only
};

struct TrueFalsePrediction {
  int label = 0;
  int acc_prediction = 0;
  int acc_norm_prediction = 0;
  std::array<double, 2> log_likelihoods{};  // of the answers for false, true
};

// Few-shot true/false accuracy (the paper's Table 3).
struct TrueFalseScores {
  double acc = 0.0;
  double acc_norm = 0.0;
  std::int64_t items = 0;
  std::vector<TrueFalsePrediction> predictions;
};

// What the BTM ensemble row was mixed from (docs/eval.md).
struct EnsembleRecord {
  ExpertCoverage coverage = ExpertCoverage::kSubdomains;
  EnsembleWeighting weighting = EnsembleWeighting::kTfidf;
};

struct ModelResults {
  std::string name;
  std::filesystem::path path;  // empty for the BTM ensemble
  std::string lb;              // yes | no | -
  bool moe = false;
  std::optional<EnsembleRecord> ensemble;
  std::map<DataSplit, SplitMetrics> splits;
  std::optional<TrueFalseScores> fewshot;
};

// How the few-shot items were asked (eval.fewshot, and the seed that drew the shots).
struct FewShotRecord {
  std::filesystem::path items, shot_file;
  std::int64_t k = 0;
  std::uint64_t seed = 0;
  std::string prompt;
  std::vector<std::string> answers;
  ShotDraw draw = ShotDraw::kPerItem;
};

struct EvalResults {
  std::filesystem::path dataset;
  std::vector<DataSplit> splits;
  std::optional<FewShotRecord> fewshot;
  std::vector<ModelResults> models;
};

nlohmann::json to_json(const EvalResults& results);
// `file` names the file in the errors (FormatError: the field, what was found and expected).
EvalResults eval_results_from_json(const nlohmann::json& json, const std::filesystem::path& file);

// EVAL/results.json, written atomically.
void write_eval_results(const std::filesystem::path& eval_dir, const EvalResults& results);
// IoError when it does not exist (run svmoe eval first), FormatError when it is not results.json.
EvalResults read_eval_results(const std::filesystem::path& eval_dir);

}  // namespace svmoe
