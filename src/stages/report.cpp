#include "svmoe/stages/report.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>

#include "svmoe/eval/report.h"
#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/eval_results.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/inference_model.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/model/device.h"
#include "svmoe/stages/evaluate.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// A run's logged lines, for its loss curve; a run that never logged is the config's mistake
// (a path that is not a run directory), said as such.
std::vector<Json> read_metrics(const fs::path& run) {
  const RunDirectory directory(run);
  if (!fs::exists(directory.metrics())) {
    throw IoError("the run '" + run.string() + "' has no metrics.jsonl",
                  "report.runs lists run directories (what finetune, train-router or train-experts --output wrote)");
  }
  return directory.read_metrics();
}

// The routing of `text` by an MoE model at `layer`, beside the TF-IDF argmax of each token.
RoutedText route_text(const std::string& name, const fs::path& model_dir, const fs::path& dataset,
                      const std::string& text, std::int64_t layer, const InferenceOptions& inference) {
  const ModelConfig config = read_model_config(model_dir);
  if (layer >= config.num_routers()) {  // a CartesianMoE has two routers a layer: A's, then B's
    throw ConfigError("report.layer is " + std::to_string(layer) + " but '" + model_dir.string() + "' has " +
                          std::to_string(config.num_routers()) + " routers",
                      "choose a router from 0 to " + std::to_string(config.num_routers() - 1));
  }
  CausalLM model = load_model_for_inference(model_dir, inference);
  const auto tokenizer = load_tokenizer(tokenizer_source(model_dir, dataset_shards(dataset, {}).tokenizer));
  const auto ids = tokenizer->encode(text, /*add_special_tokens=*/false);
  if (ids.empty()) throw ConfigError("report.text has no tokens", "give a sentence or two");
  const TfidfTargetTensors tfidf = load_tfidf_targets(dataset, config.vocab_size);
  torch::NoGradGuard no_grad;
  const auto input = torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), torch::kInt64);
  const CausalLMOutput out = model->forward(input.unsqueeze(0).to(inference.device));
  const auto biases = selection_biases(*model);
  const Routing routing = route_top_k(out.router_logits[layer], config.num_experts_per_tok,
                                      biases.empty() ? torch::Tensor() : biases[layer]);
  const auto chosen = routing.experts.select(1, 0).to(torch::kCPU);  // the top-1 of each token
  RoutedText routed{name, static_cast<int>(layer), {}, {}, {}};
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::string piece = tokenizer->piece(ids[i]);
    for (std::string::size_type at; (at = piece.find("\xE2\x96\x81")) != std::string::npos;) piece.replace(at, 3, " ");
    routed.pieces.push_back(piece);
    routed.expert.push_back(static_cast<int>(chosen[static_cast<std::int64_t>(i)].item<std::int64_t>()));
    const bool targeted = tfidf.has_target[ids[i]].item<bool>();
    routed.tfidf_argmax.push_back(targeted ? static_cast<int>(tfidf.targets[ids[i]].argmax().item<std::int64_t>())
                                           : -1);
  }
  return routed;
}

}  // namespace

std::optional<DataSplit> fig3_split(const std::vector<DataSplit>& splits) {
  if (std::find(splits.begin(), splits.end(), DataSplit::kTest) != splits.end()) return DataSplit::kTest;
  if (splits.empty()) return std::nullopt;
  return splits.front();
}

// The report's parts, in page order: the eval's tables (read from results.json, never
// recomputed), the loss curves of report.runs, one expert-selection heatmap per MoE model
// (Fig. 3), and report.text routed by each MoE model. The page is one file with its SVG inline
// (eval/report.h), written atomically under a lock beside it.
fs::path run_report(const ReportSettings& r, const EvalSettings& eval, const RuntimeSettings& runtime) {
  const EvalResults results = read_eval_results(eval.output);
  const fs::path output = r.output.empty() ? eval_report_file(eval.output) : r.output;
  const DirectoryLock lock = DirectoryLock::acquire(output, "report");  // REPORT.html.lock beside it
  ReportContent content;
  content.title = "svmoe report";
  std::vector<std::string> split_names;
  for (const DataSplit split : results.splits) split_names.push_back(enum_name(split));
  content.subtitle = "Dataset " + results.dataset.string() + "; evaluated on the " + join(split_names, ", ") +
                     " split" + (split_names.size() > 1 ? "s" : "") + " (" + eval_results_file(eval.output).string() +
                     ").";
  for (const DataSplit split : results.splits) {
    content.tables.push_back({table_title(split), metrics_table(results, split), 3});
  }
  const bool fewshot = std::any_of(results.models.begin(), results.models.end(),
                                   [](const ModelResults& model) { return model.fewshot.has_value(); });
  if (fewshot)
    content.tables.push_back({"few-shot true/false accuracy, % (the paper's Table 3)", accuracy_table(results), 2});
  for (const auto& run : r.runs) content.curves.push_back(loss_curve_from_metrics(run.name, read_metrics(run.path)));
  // Fig. 3 counts the test split's choices: the test split wherever it is listed, else the first.
  const std::optional<DataSplit> heatmap_split = fig3_split(results.splits);
  for (const ModelResults& model : results.models) {
    if (!model.moe || !heatmap_split) continue;
    const auto split = model.splits.find(*heatmap_split);
    if (split == model.splits.end() || !split->second.routing) continue;
    content.heatmaps.push_back(
        {model.name + " (LB " + model.lb + "), " + enum_name(*heatmap_split), split->second.routing->expert_fraction});
  }
  if (!r.text.empty()) {
    const InferenceOptions inference{resolve_device(runtime.device), torch::kFloat32, runtime.expert_path};
    for (const ModelResults& model : results.models) {
      if (!model.moe) continue;
      content.routed.push_back(
          route_text(model.name + " (LB " + model.lb + ")", model.path, eval.dataset, r.text, r.layer, inference));
    }
  }
  if (output.has_parent_path()) fs::create_directories(output.parent_path());
  write_file_atomically(output, render_report(content));
  spdlog::info("report: wrote {} ({} tables, {} loss curves, {} heatmaps, {} routed texts)", output.string(),
               content.tables.size(), content.curves.size(), content.heatmaps.size(), content.routed.size());
  return output;
}

}  // namespace svmoe
