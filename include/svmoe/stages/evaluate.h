// svmoe eval (SPEC.md §5): for every named model and every asked split of a prepared dataset,
// PPL per document, and for MoE models CMR_1, CMR_2, S_RL and the expert selection frequency
// per layer; written to OUTPUT/ as the paper's Table 2 (test) / Table 5 (train, valid) in
// Markdown and CSV, expert_selection.csv, and every raw number in results.json.
#pragma once

#include <functional>

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/eval/tables.h"
#include "svmoe/io/eval_results.h"
#include "svmoe/model/causal_lm.h"

namespace svmoe {
using Json = nlohmann::json;

// Evaluates every model (and the BTM ensemble), writes results.json and the tables from it.
EvalResults run_eval(const EvalSettings& settings, const RuntimeSettings& runtime);

// The metrics of one model on one split: documents, tokens, PPL and, for MoE models, CMR_1,
// CMR_2, S_RL and the expert counts and fractions (io/eval_results.h). Documents longer than `context` tokens are
// scored in consecutive windows; at most `max_documents` per subdomain (0: all).
SplitMetrics evaluate_split(CausalLM& model, const std::filesystem::path& dataset, DataSplit split,
                            std::int64_t context, std::int64_t max_documents);

// The documents of a split that evaluation reads (at most `max_documents` per subdomain, 0: all;
// documents of fewer than 2 tokens left out), subdomain by subdomain in file order.
std::vector<std::vector<std::int32_t>> split_documents(const std::filesystem::path& dataset, DataSplit split,
                                                       std::int64_t max_documents);

// Runs `model` over a document in consecutive windows of at most `context` inputs, each starting
// afresh; calls `visit` per window with the input ids [T], the log-probabilities of the next
// tokens [T] (float32) and the model's output.
using WindowVisitor =
    std::function<void(const torch::Tensor& input, const torch::Tensor& target_log_p, const CausalLMOutput& out)>;
void score_in_windows(CausalLM& model, const std::vector<std::int32_t>& ids, std::int64_t context,
                      const WindowVisitor& visit);

// The BTM ensemble baseline: per document, the dense experts' next-token probabilities mixed
// with weights from the document's token counts and the subdomains' TF-IDF rows
// (eval/ensemble_weights.h: btm.weighting, btm.coverage): documents, tokens and PPL.
SplitMetrics evaluate_btm_ensemble(const BtmSettings& btm, const std::filesystem::path& dataset, DataSplit split,
                                   std::int64_t context, std::int64_t max_documents, const torch::Device& device);
std::vector<std::vector<double>> btm_weights(const std::vector<std::vector<std::int32_t>>& documents,
                                             const torch::Tensor& subdomain_tfidf, ExpertCoverage coverage,
                                             EnsembleWeighting weighting);

// The paper's Table 2 / Table 5 (model, LB, PPL, CMR_1, CMR_2, S_RL) for one split, and Table 3
// (few-shot accuracy in percent), from run_eval's results.
Table metrics_table(const EvalResults& results, DataSplit split);
Table accuracy_table(const EvalResults& results);
std::string table_title(DataSplit split);  // "test split (the paper's Table 2)"
inline constexpr const char* kTablesLegend =
    "Mean ± std over documents (PPL), (position, layer, expert) items (CMR_k) and (position, layer) items "
    "(S_RL); PPL and S_RL are better lower, CMR_k the closer it is to k: best **bold**, second <u>underlined</u> "
    "(no mark where a column ties).";

}  // namespace svmoe
