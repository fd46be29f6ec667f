// svmoe eval (SPEC.md §5): for every named model and every asked split of a prepared dataset,
// PPL per document, and for MoE models CMR_1, CMR_2, S_RL and the expert selection frequency
// per layer; written to OUTPUT/ as the paper's Table 2 (test) / Table 5 (train, valid) in
// Markdown and CSV, expert_selection.csv, and every raw number in results.json.
#pragma once

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/model/causal_lm.h"

namespace svmoe {

nlohmann::json run_eval(const EvalSettings& settings, const RuntimeSettings& runtime);

// The metrics of one model on one split: {"documents", "tokens", "ppl", and for MoE models
// "cmr_1", "cmr_2", "s_rl" (each {"mean", "std", "count"}), "expert_counts", "expert_fraction"}.
// Documents longer than `context` tokens are scored in consecutive windows; at most
// `max_documents` per subdomain (0: all).
nlohmann::json evaluate_split(CausalLM& model, const std::filesystem::path& dataset, const std::string& split,
                              std::int64_t context, std::int64_t max_documents);

}  // namespace svmoe
