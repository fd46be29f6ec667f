// svmoe eval (SPEC.md §5): every listed model, then the BTM ensemble if asked, scored on each
// split's documents; the numbers go to results.json and the tables are written from it, so the
// tables never hold a number that results.json lacks.
#include "svmoe/stages/evaluate.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>

#include "svmoe/config/expert_coverage.h"
#include "svmoe/eval/ensemble_weights.h"
#include "svmoe/eval/fewshot.h"
#include "svmoe/eval/metrics.h"
#include "svmoe/eval/tables.h"
#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/eval_results.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/inference_model.h"
#include "svmoe/io/token_shards.h"
#include "svmoe/model/device.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/train/routing_statistics.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/progress.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {
// A metric's mean +- std over its items, as results.json records it.
MetricStats stats_of(const MeanStd& metric) {
  MetricStats stats;
  stats.count = metric.count();
  if (metric.count() > 0) {
    stats.mean = metric.mean();
    stats.std = metric.std();
  }
  return stats;
}
}  // namespace

// The split's documents, subdomain by subdomain in order, the first max_documents of each.
std::vector<std::vector<std::int32_t>> split_documents(const fs::path& dataset, DataSplit split,
                                                       std::int64_t max_documents) {
  const auto subdomains = static_cast<int>(dataset_shards(dataset, {}).train.size());
  std::vector<std::vector<std::int32_t>> documents;
  for (int d = 0; d < subdomains; ++d) {
    const TokenShard shard = TokenShard::open(shard_prefix(dataset, d, enum_name(split)));
    const auto n = static_cast<std::int64_t>(shard.documents());
    for (std::int64_t doc = 0; doc < (max_documents > 0 ? std::min(max_documents, n) : n); ++doc) {
      auto ids = shard.document(static_cast<std::uint64_t>(doc));
      if (ids.size() >= 2) documents.push_back(std::move(ids));  // a single token predicts nothing
    }
  }
  return documents;
}

// Consecutive windows of `context` predicted tokens, each starting afresh (no context carried
// over), so every token but the first is predicted once (docs/eval.md, PPL).
void score_in_windows(CausalLM& model, const std::vector<std::int32_t>& ids, std::int64_t context,
                      const WindowVisitor& visit) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  const auto all = torch::tensor(ids, torch::kInt64).to(device);
  const auto length = static_cast<std::int64_t>(ids.size());
  for (std::int64_t begin = 0; begin + 1 < length; begin += context) {
    const std::int64_t end = std::min(begin + context + 1, length);
    const auto input = all.slice(0, begin, end - 1).unsqueeze(0);
    const auto target = all.slice(0, begin + 1, end);
    const CausalLMOutput out = model->forward(input);
    const auto log_p = torch::log_softmax(out.logits[0].to(torch::kFloat32), -1);
    visit(input.reshape({-1}), log_p.gather(1, target.unsqueeze(1)).squeeze(1), out);
  }
}

// One model on one split. PPL is per document (exp of its mean NLL), then averaged over
// documents (mean and std); for an MoE, every router's logits of every window also feed CMR_k
// (against the TF-IDF targets of the input tokens), S_RL (the routers' entropy) and the expert
// counts, all SPEC.md §5.
SplitMetrics evaluate_split(CausalLM& model, const fs::path& dataset, DataSplit split, std::int64_t context,
                            std::int64_t max_documents) {
  torch::NoGradGuard no_grad;
  model->eval();
  const ModelConfig& config = model->config();
  const torch::Device device = model->parameters().front().device();
  const bool moe = config.is_moe();
  TfidfTargetTensors tfidf;
  if (moe) {
    tfidf = load_tfidf_targets(dataset, config.vocab_size);
    tfidf.targets = tfidf.targets.to(device);
    tfidf.has_target = tfidf.has_target.to(device);
  }
  MeanStd ppl, entropy;
  ConditionalMeanRank cmr;
  RoutingStatistics routing(config.num_routers(), config.num_local_experts, config.num_experts_per_tok);
  const auto biases = selection_biases(*model);
  std::int64_t tokens = 0;
  const auto documents = split_documents(dataset, split, max_documents);
  ProgressBar progress(static_cast<std::int64_t>(documents.size()), terminal_progress_wanted());
  std::int64_t seen = 0;
  for (const auto& ids : documents) {
    progress.update(++seen, fmt::format("{} documents", seen), -1);
    double nll = 0.0;
    score_in_windows(model, ids, context,
                     [&](const torch::Tensor& input, const torch::Tensor& target_log_p, const CausalLMOutput& out) {
                       nll -= target_log_p.sum().item<double>();
                       if (!moe) return;
                       const auto targets = tfidf.targets.index_select(0, input);
                       const auto has_target = tfidf.has_target.index_select(0, input);
                       for (const auto& logits : out.router_logits) {
                         cmr.add(logits, targets, has_target);
                         add_router_entropy(logits, entropy);
                       }
                       routing.add(out.router_logits, biases);
                     });
    const auto predicted = static_cast<std::int64_t>(ids.size()) - 1;
    ppl.add(std::exp(nll / static_cast<double>(predicted)));
    tokens += predicted;
  }
  progress.clear();
  SplitMetrics result{static_cast<std::int64_t>(documents.size()), tokens, stats_of(ppl), std::nullopt};
  if (moe) {
    RoutingMetrics metrics{stats_of(cmr.cmr(1)), stats_of(cmr.cmr(2)), stats_of(entropy), {}, {}};
    const auto counts = routing.load();  // [layer, expert]
    for (std::int64_t l = 0; l < counts.size(0); ++l) {
      std::vector<std::int64_t> row;
      for (std::int64_t e = 0; e < counts.size(1); ++e)
        row.push_back(static_cast<std::int64_t>(counts[l][e].item<double>()));
      metrics.expert_counts.push_back(row);
    }
    metrics.expert_fraction = routing.to_json()["expert_fraction"].get<std::vector<std::vector<double>>>();
    result.routing = std::move(metrics);
  }
  return result;
}

// Each document's weights over the ensemble's experts, from its token counts (eval/ensemble_weights.h).
std::vector<std::vector<double>> btm_weights(const std::vector<std::vector<std::int32_t>>& documents,
                                             const torch::Tensor& subdomain_tfidf, ExpertCoverage coverage,
                                             EnsembleWeighting weighting) {
  const auto vocabulary = subdomain_tfidf.size(1);
  const auto covered = expert_subdomains(coverage, subdomain_tfidf.size(0));
  std::vector<std::vector<double>> weights;
  for (const auto& ids : documents) {
    auto counts = torch::zeros({vocabulary}, torch::kFloat64);
    for (const auto id : ids) {
      if (id < vocabulary) counts[id] += 1.0;
    }
    weights.push_back(ensemble_weights(counts, subdomain_tfidf, covered, weighting));
  }
  return weights;
}

// The BTM ensemble: p(token) = sum_n w_n(document) p_n(token), each dense expert scored on every
// document first (one expert in memory at a time), then mixed per token in log space.
SplitMetrics evaluate_btm_ensemble(const BtmSettings& btm, const fs::path& dataset, DataSplit split,
                                   std::int64_t context, std::int64_t max_documents, const torch::Device& device) {
  const std::vector<fs::path>& experts = btm.experts;
  const auto documents = split_documents(dataset, split, max_documents);
  const auto subdomain_tfidf = load_subdomain_tfidf(dataset);
  const auto expected = expert_subdomains(btm.coverage, subdomain_tfidf.size(0)).size();
  if (expected != experts.size()) {
    throw ConfigError("eval.btm.experts lists " + std::to_string(experts.size()) + " experts but eval.btm.coverage " +
                          enum_name(btm.coverage) + " over the dataset's " + std::to_string(subdomain_tfidf.size(0)) +
                          " subdomains makes " + std::to_string(expected),
                      btm.coverage == ExpertCoverage::kPairs
                          ? "list the expert of every pair of subdomains {i, j}, i < j, in lexicographic order"
                          : "list expert n (trained on subdomain n) for every subdomain, in order");
  }
  const auto weights = btm_weights(documents, subdomain_tfidf, btm.coverage, btm.weighting);
  // log p_n(token) for every expert, document and predicted token; one expert in memory at a time.
  std::vector<std::vector<std::vector<float>>> log_p(experts.size());
  for (std::size_t n = 0; n < experts.size(); ++n) {
    CausalLM model = load_model_for_inference(experts[n], {device});
    for (const auto& ids : documents) {
      std::vector<float> values;
      score_in_windows(model, ids, context,
                       [&](const torch::Tensor&, const torch::Tensor& target_log_p, const CausalLMOutput&) {
                         const auto cpu = target_log_p.to(torch::kCPU).contiguous();
                         values.insert(values.end(), cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
                       });
      log_p[n].push_back(std::move(values));
    }
  }
  MeanStd ppl;
  std::int64_t tokens = 0;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    double nll = 0.0;
    const std::size_t count = log_p[0][d].size();
    for (std::size_t i = 0; i < count; ++i) {
      // log sum_n w_n p_n, stably.
      double peak = -1e300;
      for (std::size_t n = 0; n < experts.size(); ++n) peak = std::max(peak, static_cast<double>(log_p[n][d][i]));
      double mixture = 0.0;
      for (std::size_t n = 0; n < experts.size(); ++n) mixture += weights[d][n] * std::exp(log_p[n][d][i] - peak);
      nll -= peak + std::log(mixture);
    }
    ppl.add(std::exp(nll / static_cast<double>(count)));
    tokens += static_cast<std::int64_t>(count);
  }
  return {static_cast<std::int64_t>(documents.size()), tokens, stats_of(ppl), std::nullopt};
}

namespace {

// Tokens per scoring window: eval.context_length, or the model's own context when 0.
std::int64_t scoring_context(std::int64_t configured, const ModelConfig& config) {
  return configured > 0 ? configured : std::max<std::int64_t>(1, config.max_position_embeddings);
}

TableCell metric_cell(const MetricStats& metric) {
  if (!metric.mean) return {};
  return {"", *metric.mean, metric.std};
}

TableCell text_cell(const std::string& text) { return {text, std::nullopt, std::nullopt}; }

}  // namespace

Table metrics_table(const EvalResults& results, DataSplit split) {
  Table table;
  // CMR_k is better the closer it is to k (routing follows TF-IDF exactly at k; SPEC.md §5).
  table.columns = {{"model"},
                   {"LB"},
                   {"PPL", Better::kLower},
                   {"CMR_1", Better::kCloserToTarget, 1.0},
                   {"CMR_2", Better::kCloserToTarget, 2.0},
                   {"S_RL", Better::kLower}};
  for (const ModelResults& model : results.models) {
    const auto found = model.splits.find(split);
    if (found == model.splits.end()) continue;
    const SplitMetrics& r = found->second;
    // A dense model's routing cells are empty (shown as -).
    const RoutingMetrics routing = r.routing.value_or(RoutingMetrics{});
    table.rows.push_back({text_cell(model.name), text_cell(model.lb), metric_cell(r.ppl), metric_cell(routing.cmr_1),
                          metric_cell(routing.cmr_2), metric_cell(routing.s_rl)});
  }
  return table;
}

Table accuracy_table(const EvalResults& results) {
  Table table;
  // Two answers: 50% is chance, and no score at or below it is marked best.
  table.columns = {{"model"}, {"LB"}, {"acc", Better::kHigher, 0.0, 50.0}, {"acc_norm", Better::kHigher, 0.0, 50.0}};
  for (const ModelResults& model : results.models) {
    if (!model.fewshot) continue;
    table.rows.push_back({text_cell(model.name),
                          text_cell(model.lb),
                          {"", 100.0 * model.fewshot->acc, std::nullopt},
                          {"", 100.0 * model.fewshot->acc_norm, std::nullopt}});
  }
  return table;
}

std::string table_title(DataSplit split) {
  return std::string(enum_name(split)) + " split" +
         (split == DataSplit::kTest ? " (the paper's Table 2)" : " (the paper's Table 5)");
}

namespace {

// Every model is checked before the first is evaluated: a typo in the last path should not cost
// the evaluation of the others.
void check_models(const EvalSettings& s, const DatasetShards& shards) {
  for (const EvalModel& entry : s.models) {
    const ModelConfig config = read_model_config(entry.path);
    if (config.vocab_size < shards.vocab_size) {
      throw ConfigError("model '" + entry.name + "' (" + entry.path.string() + ") has a vocabulary of " +
                            std::to_string(config.vocab_size) + " but the dataset's tokenizer " +
                            std::to_string(shards.vocab_size),
                        "evaluate models trained on this dataset's tokenizer");
    }
    if (!config.is_moe()) {
      spdlog::info("eval: {} is a dense model: CMR_1, CMR_2, S_RL and expert selection do not apply (shown as -)",
                   entry.name);
    }
  }
  for (const fs::path& expert : s.btm.experts) read_model_config(expert);
}

struct FewShotTask {
  std::vector<TrueFalseItem> items, shots;
  FewShotFormat format;
};

// One model on every split (Table 2's metrics) and, with items, few-shot true/false (Table 3).
ModelResults evaluate_model(const EvalModel& entry, const EvalSettings& s, const RuntimeSettings& runtime,
                            const torch::Device& device, const DatasetShards& shards, const FewShotTask& fewshot) {
  const auto& items = fewshot.items;
  CausalLM model = load_model_for_inference(entry.path, {device, torch::kFloat32, runtime.expert_path});
  const std::int64_t context = scoring_context(s.context_length, model->config());
  ModelResults result{entry.name, entry.path, entry.lb, model->config().is_moe(), std::nullopt, {}, std::nullopt};
  for (const DataSplit split : s.splits) {
    spdlog::info("eval: {} on the {} split", entry.name, enum_name(split));
    const SplitMetrics& r = result.splits[split] = evaluate_split(model, s.dataset, split, context, s.max_documents);
    spdlog::info("eval: {} {}: {} documents, PPL {:.3f}{}", entry.name, enum_name(split), r.documents,
                 r.ppl.mean.value_or(0.0),
                 r.routing && r.routing->cmr_1.mean
                     ? fmt::format(", CMR_1 {:.3f}, CMR_2 {:.3f}, S_RL {:.3f}", *r.routing->cmr_1.mean,
                                   r.routing->cmr_2.mean.value_or(0.0), r.routing->s_rl.mean.value_or(0.0))
                     : std::string());
  }
  if (!items.empty()) {
    const auto tokenizer = load_tokenizer(tokenizer_source(entry.path, shards.tokenizer));
    result.fewshot = evaluate_true_false(model, *tokenizer, items, fewshot.shots, fewshot.format);
    spdlog::info("eval: {} few-shot true/false ({} items, {} shots): acc {:.2f}%, acc_norm {:.2f}%", entry.name,
                 items.size(), s.fewshot.k, 100.0 * result.fewshot->acc, 100.0 * result.fewshot->acc_norm);
  }
  return result;
}

// The BTM ensemble baseline's row (docs/eval.md).
ModelResults evaluate_btm_row(const EvalSettings& s, const torch::Device& device) {
  ModelResults result{s.btm.name, "", "-", false, EnsembleRecord{s.btm.coverage, s.btm.weighting}, {}, std::nullopt};
  const std::int64_t context = scoring_context(s.context_length, read_model_config(s.btm.experts.front()));
  for (const DataSplit split : s.splits) {
    const std::string name = enum_name(split);
    spdlog::info("eval: {} ({} dense experts on {}, mixed per document by {} weights) on the {} split", s.btm.name,
                 s.btm.experts.size(), enum_name(s.btm.coverage), enum_name(s.btm.weighting), name);
    const SplitMetrics& r = result.splits[split] =
        evaluate_btm_ensemble(s.btm, s.dataset, split, context, s.max_documents, device);
    spdlog::info("eval: {} {}: PPL {:.3f}", s.btm.name, name, r.ppl.mean.value_or(0.0));
  }
  return result;
}

// results.json, tables.md, table_SPLIT.csv, table_fewshot.csv and expert_selection.csv.
void write_eval_outputs(const EvalResults& results, const EvalSettings& s, bool fewshot) {
  fs::create_directories(s.output);
  write_eval_results(s.output, results);
  std::string tables = "# Evaluation\n\nDataset `" + s.dataset.string() + "`. " + kTablesLegend + "\n\n";
  for (const DataSplit split : s.splits)
    tables += "## " + table_title(split) + "\n\n" + markdown_table(metrics_table(results, split)) + "\n";
  const std::string accuracy = fewshot
                                   ? "## Few-shot true/false accuracy, % (the paper's Table 3; higher is better)\n\n" +
                                         markdown_table(accuracy_table(results), 2) + "\n"
                                   : std::string();
  write_file_atomically(eval_tables_file(s.output), tables + accuracy);
  if (fewshot) write_file_atomically(eval_fewshot_table_file(s.output), csv_table(accuracy_table(results)));
  for (const DataSplit split : s.splits) {
    const std::string name = enum_name(split);
    write_file_atomically(eval_split_table_file(s.output, name), csv_table(metrics_table(results, split)));
  }
  std::string selection = "model,split,layer,expert,count,fraction\n";
  for (const ModelResults& model : results.models) {
    for (const DataSplit split : s.splits) {
      const std::optional<RoutingMetrics>& r = model.splits.at(split).routing;
      if (!r) continue;
      for (std::size_t l = 0; l < r->expert_counts.size(); ++l) {
        for (std::size_t e = 0; e < r->expert_counts[l].size(); ++e) {
          selection += fmt::format("{},{},{},{},{},{}\n", model.name, enum_name(split), l, e, r->expert_counts[l][e],
                                   r->expert_fraction[l][e]);
        }
      }
    }
  }
  write_file_atomically(eval_expert_selection_file(s.output), selection);
  spdlog::info("eval: wrote {} (tables.md, table_SPLIT.csv, expert_selection.csv, results.json)", s.output.string());
}

}  // namespace

EvalResults run_eval(const EvalSettings& s, const RuntimeSettings& runtime) {
  const DirectoryLock lock = DirectoryLock::acquire(s.output, "eval");
  const DatasetShards shards = dataset_shards(s.dataset, {});
  const torch::Device device = resolve_device(runtime.device);
  EvalResults results{s.dataset, s.splits, std::nullopt, {}};
  FewShotTask fewshot;
  if (!s.fewshot.items.empty()) {
    fewshot.items = read_true_false_items(s.fewshot.items);
    fewshot.shots = read_true_false_items(s.fewshot.shot_file);
    fewshot.format = {static_cast<int>(s.fewshot.k), runtime.seed,  s.fewshot.prompt, s.fewshot.answers,
                      s.fewshot.separator,           s.fewshot.draw};
    results.fewshot = FewShotRecord{s.fewshot.items,  s.fewshot.shot_file, s.fewshot.k,   runtime.seed,
                                    s.fewshot.prompt, s.fewshot.answers,   s.fewshot.draw};
  }
  check_models(s, shards);
  for (const EvalModel& entry : s.models) {
    results.models.push_back(evaluate_model(entry, s, runtime, device, shards, fewshot));
  }
  if (!s.btm.experts.empty()) results.models.push_back(evaluate_btm_row(s, device));
  write_eval_outputs(results, s, !fewshot.items.empty());
  return results;
}

}  // namespace svmoe
