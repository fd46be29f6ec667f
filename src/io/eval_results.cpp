#include "svmoe/io/eval_results.h"

#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/json_fields.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Writing: each struct as the header's comment lays it out (nlohmann orders an object's keys).

// A metric no document produced (no routed token in a split, say) is written with null mean and
// std so that tables print "-" instead of a 0 that reads like a measurement.
Json stats_json(const MetricStats& stats) {
  if (!stats.mean) return {{"mean", nullptr}, {"std", nullptr}, {"count", stats.count}};
  return {{"mean", *stats.mean}, {"std", stats.std.value_or(0.0)}, {"count", stats.count}};
}

Json split_json(const SplitMetrics& split) {
  Json out = {{"documents", split.documents}, {"tokens", split.tokens}, {"ppl", stats_json(split.ppl)}};
  // Routing metrics exist for MoE models only; a dense model's split has no such keys, and the
  // reader takes the presence of cmr_1 as the sign of the rest.
  if (split.routing) {
    out["cmr_1"] = stats_json(split.routing->cmr_1);
    out["cmr_2"] = stats_json(split.routing->cmr_2);
    out["s_rl"] = stats_json(split.routing->s_rl);
    out["expert_counts"] = split.routing->expert_counts;
    out["expert_fraction"] = split.routing->expert_fraction;
  }
  return out;
}

Json fewshot_scores_json(const TrueFalseScores& scores) {
  Json predictions = Json::array();
  for (const auto& p : scores.predictions) {
    predictions.push_back({{"label", p.label},
                           {"acc_prediction", p.acc_prediction},
                           {"acc_norm_prediction", p.acc_norm_prediction},
                           // [answer 0, answer 1]: the summed log-likelihoods acc compares
                           {"log_likelihoods", {p.log_likelihoods[0], p.log_likelihoods[1]}}});
  }
  return {{"acc", scores.acc}, {"acc_norm", scores.acc_norm}, {"items", scores.items}, {"predictions", predictions}};
}

Json model_json(const ModelResults& model) {
  Json splits = Json::object();
  for (const auto& [split, metrics] : model.splits) splits[enum_name(split)] = split_json(metrics);
  Json out = {
      {"name", model.name}, {"path", model.path.string()}, {"lb", model.lb}, {"moe", model.moe}, {"splits", splits}};
  if (model.ensemble) {
    out["ensemble"] = {{"kind", "btm"},
                       {"coverage", enum_name(model.ensemble->coverage)},
                       {"weighting", enum_name(model.ensemble->weighting)}};
  }
  if (model.fewshot) out["fewshot"] = fewshot_scores_json(*model.fewshot);
  return out;
}

// Reading: every field checked by io/json_fields.h's reader, `where` the path of the object read.
JsonFieldReader results_reader(const fs::path& file) {
  return JsonFieldReader(file, "it is svmoe eval's results.json: run svmoe eval again to write it");
}

// The writer's two shapes: {mean, std, count} or {mean: null, std: null, count}.
MetricStats read_stats(const JsonFieldReader& read, const Json& object, const std::string& key,
                       const std::string& where) {
  const Json& value = read.field(object, key, where);
  const std::string path = where + "." + key;
  MetricStats out;
  out.count = read.get<std::uint64_t>(value, "count", path, "a count");
  if (!read.field(value, "mean", path).is_null()) {
    out.mean = read.get<double>(value, "mean", path, "a number or null");
    out.std = read.get<double>(value, "std", path, "a number");
  }
  return out;
}

SplitMetrics read_split(const JsonFieldReader& read, const Json& json, const std::string& where) {
  SplitMetrics out;
  out.documents = read.get<std::int64_t>(json, "documents", where, "a count");
  out.tokens = read.get<std::int64_t>(json, "tokens", where, "a count");
  out.ppl = read_stats(read, json, "ppl", where);
  if (json.contains("cmr_1")) {
    RoutingMetrics routing;
    routing.cmr_1 = read_stats(read, json, "cmr_1", where);
    routing.cmr_2 = read_stats(read, json, "cmr_2", where);
    routing.s_rl = read_stats(read, json, "s_rl", where);
    routing.expert_counts =
        read.get<std::vector<std::vector<std::int64_t>>>(json, "expert_counts", where, "[layer][expert] counts");
    routing.expert_fraction =
        read.get<std::vector<std::vector<double>>>(json, "expert_fraction", where, "[layer][expert] fractions");
    out.routing = std::move(routing);
  }
  return out;
}

TrueFalseScores read_fewshot_scores(const JsonFieldReader& read, const Json& json, const std::string& where) {
  TrueFalseScores out;
  out.acc = read.get<double>(json, "acc", where, "a fraction");
  out.acc_norm = read.get<double>(json, "acc_norm", where, "a fraction");
  out.items = read.get<std::int64_t>(json, "items", where, "a count");
  const Json& predictions = read.field(json, "predictions", where);
  if (!predictions.is_array()) read.fail(where + ".predictions", predictions.dump(), "a list");
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const std::string at = where + ".predictions[" + std::to_string(i) + "]";
    TrueFalsePrediction p;
    p.label = read.get<int>(predictions[i], "label", at, "0 or 1");
    p.acc_prediction = read.get<int>(predictions[i], "acc_prediction", at, "0 or 1");
    p.acc_norm_prediction = read.get<int>(predictions[i], "acc_norm_prediction", at, "0 or 1");
    p.log_likelihoods = read.get<std::array<double, 2>>(predictions[i], "log_likelihoods", at, "two numbers");
    out.predictions.push_back(p);
  }
  return out;
}

ModelResults read_model(const JsonFieldReader& read, const Json& json, const std::string& where) {
  ModelResults out;
  out.name = read.get<std::string>(json, "name", where, "a string");
  out.path = read.get<std::string>(json, "path", where, "a string");
  out.lb = read.get<std::string>(json, "lb", where, "yes, no or -");
  out.moe = read.get<bool>(json, "moe", where, "true or false");
  if (json.contains("ensemble")) {
    const Json& ensemble = json.at("ensemble");
    out.ensemble = EnsembleRecord{read.option<ExpertCoverage>(ensemble, "coverage", where + ".ensemble"),
                                  read.option<EnsembleWeighting>(ensemble, "weighting", where + ".ensemble")};
  }
  const Json& splits = read.field(json, "splits", where);
  if (!splits.is_object()) read.fail(where + ".splits", splits.dump(), "{split: metrics}");
  // The splits are keyed by name; an unknown name is an error rather than skipped, since the
  // tables would otherwise silently miss a column.
  for (auto it = splits.begin(); it != splits.end(); ++it) {
    const auto split = enum_from_name<DataSplit>(it.key());
    if (!split) read.fail(where + ".splits", "the split '" + it.key() + "'", "train, valid or test");
    out.splits[*split] = read_split(read, it.value(), where + ".splits." + it.key());
  }
  if (json.contains("fewshot")) out.fewshot = read_fewshot_scores(read, json.at("fewshot"), where + ".fewshot");
  return out;
}

}  // namespace

// The top level: {dataset, splits, models: [...], fewshot?}. The few-shot record (its items,
// shots, seed and prompt) is written once here; each model carries only its scores.
Json to_json(const EvalResults& results) {
  Json splits = Json::array();
  for (const DataSplit split : results.splits) splits.push_back(enum_name(split));
  Json out = {{"dataset", results.dataset.string()}, {"splits", splits}, {"models", Json::array()}};
  if (results.fewshot) {
    const FewShotRecord& f = *results.fewshot;
    out["fewshot"] = {{"items", f.items.string()},
                      {"shot_file", f.shot_file.string()},
                      {"k", f.k},
                      {"seed", f.seed},
                      {"prompt", f.prompt},
                      {"answers", f.answers},
                      {"draw", enum_name(f.draw)}};
  }
  for (const auto& model : results.models) out["models"].push_back(model_json(model));
  return out;
}

EvalResults eval_results_from_json(const Json& json, const fs::path& file) {
  const JsonFieldReader read = results_reader(file);
  EvalResults out;
  out.dataset = read.get<std::string>(json, "dataset", "results", "a path");
  const Json& splits = read.field(json, "splits", "results");
  if (!splits.is_array()) read.fail("results.splits", splits.dump(), "a list of splits");
  for (const auto& name : splits) {
    const auto split = name.is_string() ? enum_from_name<DataSplit>(name.get<std::string>()) : std::nullopt;
    if (!split) read.fail("results.splits", "the split " + name.dump(), "train, valid or test");
    out.splits.push_back(*split);
  }
  if (json.contains("fewshot")) {
    const Json& f = json.at("fewshot");
    const std::string where = "results.fewshot";
    out.fewshot = FewShotRecord{read.get<std::string>(f, "items", where, "a path"),
                                read.get<std::string>(f, "shot_file", where, "a path"),
                                read.get<std::int64_t>(f, "k", where, "a count"),
                                read.get<std::uint64_t>(f, "seed", where, "a seed"),
                                read.get<std::string>(f, "prompt", where, "a string"),
                                read.get<std::vector<std::string>>(f, "answers", where, "two strings"),
                                read.option<ShotDraw>(f, "draw", where)};
  }
  const Json& models = read.field(json, "models", "results");
  if (!models.is_array()) read.fail("results.models", models.dump(), "a list of models");
  for (std::size_t i = 0; i < models.size(); ++i) {
    out.models.push_back(read_model(read, models[i], "results.models[" + std::to_string(i) + "]"));
  }
  return out;
}

// Atomically (temporary file, then rename): an interrupted eval leaves the previous results.json,
// never half of a new one.
void write_eval_results(const fs::path& eval_dir, const EvalResults& results) {
  write_file_atomically(eval_results_file(eval_dir), to_json(results).dump(2) + "\n");
}

EvalResults read_eval_results(const fs::path& eval_dir) {
  const fs::path file = eval_results_file(eval_dir);
  if (!fs::exists(file))
    throw IoError("'" + file.string() + "' does not exist", "run svmoe eval with this config first");
  return eval_results_from_json(results_reader(file).parse(), file);
}

}  // namespace svmoe
