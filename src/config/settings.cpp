#include "svmoe/config/settings.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "svmoe/config/setting_rows.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

// Each parser: read_settings<S> reads every row of the section into its member, each value
// checked by its row (type, range, choices, a required path's hint); what stays here are the
// rules a single row cannot say, between two keys or beyond a range.

RuntimeSettings parse_runtime_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RuntimeSettings s = read_settings<RuntimeSettings>(read);
  // A free string rather than an enum row because "cuda:N" carries the device index.
  if (s.device != "auto" && s.device != "cpu" && !starts_with(s.device, "cuda")) {
    throw ConfigError(
        "config key 'runtime.device' (from " + config.origin("runtime.device") + ") is '" + s.device + "'",
        "use auto, cpu, cuda or cuda:N");
  }
  return s;
}

ForwardSettings parse_forward_settings(const ConfigTree& config) {
  const SettingReader read(config);
  const ForwardSettings s = read_settings<ForwardSettings>(read);
  if (s.output.empty() && s.compare.empty()) {
    throw ConfigError("svmoe forward has nothing to do: neither forward.output nor forward.compare is set",
                      "give --output OUT.safetensors, --compare EXPECTED.safetensors, or both");
  }
  return s;
}

GenerateSettings parse_generate_settings(const ConfigTree& config) {
  const SettingReader read(config);
  const GenerateSettings s = read_settings<GenerateSettings>(read);
  if (s.top_p <= 0.0) read.fail("generate.top_p", "a value in (0, 1]", "1 keeps every token");
  if (s.repetition_penalty <= 0.0) {
    read.fail("generate.repetition_penalty", "a value above 0", "1 for no penalty, above 1 to discourage repeats");
  }
  if (s.prompts.empty() && s.prompts_file.empty()) {
    throw ConfigError("svmoe generate has no prompt: neither generate.prompts nor generate.prompts_file is set",
                      "give --prompt TEXT (repeatable) or --prompts-file FILE");
  }
  return s;
}

ServeSettings parse_serve_settings(const ConfigTree& config) {
  const SettingReader read(config);
  const ServeSettings s = read_settings<ServeSettings>(read);
  if (s.default_max_tokens > s.max_tokens) {
    read.fail("serve.default_max_tokens", "at most serve.max_tokens (" + std::to_string(s.max_tokens) + ")",
              "raise serve.max_tokens or lower serve.default_max_tokens");
  }
  if (s.host.empty()) read.fail("serve.host", "an address to bind", "127.0.0.1 (this machine only) or 0.0.0.0 (all)");
  return s;
}

PrepareSettings parse_prepare_settings(const ConfigTree& config, PathsFrom paths) {
  const SettingReader read(config);
  PrepareSettings s = read_settings<PrepareSettings>(read, paths);
  // Read here, not by its row: the valid subdomain ids, 1..num_subdomains, depend on another key.
  for (const auto& [category, id] : read.integer_mapping("prepare.subdomain_of", 1, s.num_subdomains)) {
    s.subdomain_of[category] = static_cast<int>(id);
  }
  if (paths == PathsFrom::kConfig) check_prepare_settings(s, read);
  return s;
}

// The parse_* functions run these with PathsFrom::kConfig; svmoe run calls them itself after
// the experiment layout has set the paths (stages/pipeline.cpp), so both check the same rules.
void check_prepare_settings(const PrepareSettings& s, const SettingReader& read) {
  if (s.corpus.empty()) {
    throw ConfigError("config key 'prepare.corpus' is empty", "list the corpus's JSONL files or directories");
  }
  // The tokenizer is required unless one is trained.
  read.require("prepare.tokenizer", !s.tokenizer.empty() || s.tokenizer_train.enabled,
               "give the model's tokenizer (a directory, tokenizer.json or tokenizer.model), or set "
               "prepare.tokenizer_train.enabled: true to train one on the corpus");
  if (s.tokenizer_train.enabled && !s.tokenizer.empty()) {
    throw ConfigError("both prepare.tokenizer and prepare.tokenizer_train.enabled are set",
                      "use the given tokenizer, or train one: not both");
  }
  for (const auto& pinned : s.pinned_categories) {
    if (!s.categories.empty() && std::find(s.categories.begin(), s.categories.end(), pinned) == s.categories.end()) {
      throw ConfigError("pinned category '" + pinned + "' is not in prepare.categories",
                        "add it to prepare.categories, or leave prepare.categories empty to keep every category");
    }
  }
  if (!s.subdomain_of.empty() && !s.pinned_categories.empty()) {
    throw ConfigError("both prepare.subdomain_of and prepare.pinned_categories are set",
                      "prepare.subdomain_of gives every category's subdomain (a pinned category is one alone in its "
                      "subdomain there): leave prepare.pinned_categories empty");
  }
  if (s.equity_fraction <= 0.0) {
    throw ConfigError(
        "config key 'prepare.equity_fraction' is " + std::to_string(s.equity_fraction) + ", expected a value in (0, 1]",
        "0.3 is the cited implementation's default; 1 asks for sizes as equal as possible");
  }
  // Compared with a tolerance: 0.8 + 0.1 + 0.1 is not exactly 1 in binary floating point.
  const double total = s.train_fraction + s.valid_fraction + s.test_fraction;
  if (std::abs(total - 1.0) > 1e-9 || s.train_fraction <= 0) {
    throw ConfigError("prepare.split fractions (train " + Json(s.train_fraction).dump() + ", valid " +
                          Json(s.valid_fraction).dump() + ", test " + Json(s.test_fraction).dump() + ") sum to " +
                          Json(total).dump(),
                      "they must sum to 1 with a positive train fraction, e.g. 0.8 / 0.1 / 0.1");
  }
}

double merge_parameter_value(const MergeSettings& settings, MergeParameter parameter) {
  switch (parameter) {
    case MergeParameter::kDropRatio:
      return settings.drop_ratio;
    case MergeParameter::kNoiseStd:
      break;
  }
  return settings.noise_std;
}

MergeSettings parse_merge_settings(const ConfigTree& config, PathsFrom paths) {
  const SettingReader read(config);
  MergeSettings s = read_settings<MergeSettings>(read, paths);
  if (paths == PathsFrom::kConfig) check_merge_settings(s, read);
  return s;
}

// The method's descriptor (config/merge_method.h) says which inputs it reads: trained experts
// (btx, btx_drop_upcycling) or N copies of one dense model (naive, noise, drop_upcycling). The
// other input must be absent, so that a config never names a model the merge ignores. It also
// sets num_experts from merge.experts when the experts give the count.
void check_merge_settings(MergeSettings& s, const SettingReader& read) {
  const std::string method = enum_name(s.method);
  if (merge_method_spec(s.method).merges_trained_experts()) {
    if (s.experts.size() < 2) {
      throw ConfigError("config key 'merge.experts' lists " + std::to_string(s.experts.size()) +
                            " expert(s); merge.method " + method + " merges at least 2 trained experts",
                        "list the N expert checkpoint directories (svmoe train-experts writes experts/expert_n), "
                        "or upcycle one dense model with merge.method naive, noise or drop_upcycling");
    }
    if (s.shared_expert == SharedExpertInit::kBase) {
      read.require("merge.base_model", !s.base_model.empty(),
                   "merge.shared_expert base copies the FFN of the dense model the experts were "
                   "trained from: give it (merge.base_model or --base-model)");
    } else if (!s.base_model.empty()) {
      read.fail("merge.base_model", "unset with merge.method " + method + ", which merges merge.experts",
                "remove it, pick merge.method naive, noise or drop_upcycling to upcycle that model, or set "
                "merge.shared_expert: base to start the shared expert from its FFN");
    }
    if (s.num_experts != 0 && s.num_experts != static_cast<std::int64_t>(s.experts.size())) {
      read.fail("merge.num_experts", "0 or " + std::to_string(s.experts.size()) + ", the number of merge.experts",
                "leave it at 0: the experts give their count");
    }
    s.num_experts = static_cast<std::int64_t>(s.experts.size());
  } else {
    read.require("merge.base_model", !s.base_model.empty(),
                 "merge.method " + method +
                     " copies one dense model: give it (merge.base_model or "
                     "--base-model)");
    if (!s.experts.empty()) {
      read.fail("merge.experts", "empty with merge.method " + method + ", which copies merge.base_model",
                "remove the list, or pick merge.method btx or btx_drop_upcycling to merge trained experts");
    }
    if (s.num_experts < 2) {
      read.fail("merge.num_experts", "2 or more copies of merge.base_model", "set merge.num_experts (--num-experts)");
    }
  }
  if (s.shared_expert != SharedExpertInit::kNone && s.moe_kind == MoeKind::kSoft) {
    read.fail("merge.shared_expert", "none with merge.moe_kind soft (the shared expert is Qwen2-MoE's, a sparse MoE)",
              "set merge.shared_expert: none, or merge.moe_kind: sparse");
  }
  if (s.num_experts_per_tok > s.num_experts) {
    read.fail("merge.num_experts_per_tok", "at most the number of experts (" + std::to_string(s.num_experts) + ")");
  }
}

namespace {
// The tree with a stage's own `STAGE.train` keys (non-null) in place of the `train` ones.
ConfigTree with_stage_train(const ConfigTree& stage_config, const std::string& stage) {
  ConfigTree config = stage_config;
  if (!stage.empty()) {
    for (const auto& key : train_keys()) {
      const std::string own = stage + ".train." + key;
      if (!stage_config.at(own).is_null()) {
        config.set("train." + key, stage_config.at(own), stage_config.origin(own) + ", as " + own);
      }
    }
  }
  return config;
}
}  // namespace

// The step hash's view of a stage's training settings: resolved the same way as the stage reads
// them, each kept value as the config wrote it (config/setting_rows.h, hashed_settings).
Json hashed_train_settings(const ConfigTree& config, const std::string& stage) {
  const ConfigTree resolved = with_stage_train(config, stage);
  const TrainSettings train = read_settings<TrainSettings>(SettingReader(resolved));
  return hashed_settings(train, train, [&](const std::string& key) { return resolved.at(key); });
}

TrainSettings parse_train_settings(const ConfigTree& stage_config, const std::string& stage) {
  const ConfigTree config = with_stage_train(stage_config, stage);
  return read_settings<TrainSettings>(SettingReader(config));
}

FinetuneSettings parse_finetune_settings(const ConfigTree& config, PathsFrom paths) {
  const FinetuneSettings s = read_settings<FinetuneSettings>(SettingReader(config), paths);
  if (paths == PathsFrom::kConfig) check_finetune_settings(s);
  return s;
}

void check_finetune_settings(const FinetuneSettings& s) {
  if (!s.subdomain_weights.empty() && s.subdomain_weights.size() != s.subdomains.size()) {
    throw ConfigError("config key 'finetune.subdomain_weights' has " + std::to_string(s.subdomain_weights.size()) +
                          " weights for " + std::to_string(s.subdomains.size()) + " subdomains",
                      "list the subdomains in finetune.subdomains and one weight for each");
  }
}

TrainExpertsSettings parse_train_experts_settings(const ConfigTree& config, PathsFrom paths) {
  return read_settings<TrainExpertsSettings>(SettingReader(config), paths);
}

TrainRouterSettings parse_train_router_settings(const ConfigTree& config, PathsFrom paths) {
  return read_settings<TrainRouterSettings>(SettingReader(config), paths);
}

namespace {
// eval.models: records of {name, path, lb}, at least one.
std::vector<EvalModel> read_eval_models(const ConfigTree& config) {
  std::vector<EvalModel> out;
  const Json& models = config.at("eval.models");
  const std::string origin = config.origin("eval.models");
  const std::string shape = "a list of {name: ..., path: DIR, lb: yes|no|-}";
  if (!models.is_array() || models.empty()) {
    throw ConfigError("config key 'eval.models' (from " + origin + ") must be " + shape,
                      "list the models to evaluate, e.g. - {name: BTX, path: runs/btx/final, lb: no}");
  }
  for (std::size_t i = 0; i < models.size(); ++i) {
    const Json& m = models[i];
    const std::string where = "eval.models[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("name") || !m.contains("path") || !m["name"].is_string() ||
        !m["path"].is_string()) {
      throw ConfigError("config key '" + where + "' (from " + origin + ") is " + m.dump() + "; expected " + shape);
    }
    for (const auto& [key, value] : m.items()) {
      if (key != "name" && key != "path" && key != "lb") {
        throw ConfigError("config key '" + where + "." + key + "' (from " + origin + ") is not known",
                          "a model has name, path and lb");
      }
    }
    EvalModel model{m["name"].get<std::string>(), m["path"].get<std::string>(), "-"};
    if (m.contains("lb")) {
      const Json& lb = m["lb"];
      if (lb.is_boolean())
        model.lb = lb.get<bool>() ? "yes" : "no";
      else if (lb.is_string() && (lb == "yes" || lb == "no" || lb == "-"))
        model.lb = lb.get<std::string>();
      else
        throw ConfigError("config key '" + where + ".lb' (from " + origin + ") is " + lb.dump() +
                          "; expected yes, no or -");
    }
    out.push_back(model);
  }
  return out;
}
}  // namespace

EvalSettings parse_eval_settings(const ConfigTree& config, PathsFrom paths) {
  const SettingReader read(config);
  EvalSettings s = read_settings<EvalSettings>(read, paths);
  if (paths == PathsFrom::kConfig) {
    s.models = read_eval_models(config);
    check_eval_settings(s, read);
  }
  return s;
}

void check_eval_settings(const EvalSettings& s, const SettingReader& read) {
  const FewShotSettings& f = s.fewshot;
  read.require("eval.fewshot.shot_file", f.items.empty() || !f.shot_file.empty(),
               "few-shot items need a file of solved shots (eval.fewshot.shot_file)");
  // The prompt template is filled per shot and per item; without the placeholder every prompt
  // would be the same string and the score meaningless.
  if (f.prompt.find("{statement}") == std::string::npos) {
    throw ConfigError(
        "config key 'eval.fewshot.prompt' (from " + read.origin("eval.fewshot.prompt") + ") has no {statement}",
        "write where the statement goes, e.g. \"{statement}\\n答え:\"");
  }
  if (f.answers.size() != 2 || f.answers[0] == f.answers[1]) {
    throw ConfigError("config key 'eval.fewshot.answers' (from " + read.origin("eval.fewshot.answers") +
                      ") must be two different strings: the answer for false (label 0), then for true (label 1)");
  }
}

ReportSettings parse_report_settings(const ConfigTree& config, PathsFrom paths) {
  ReportSettings s = read_settings<ReportSettings>(SettingReader(config), paths);
  if (paths == PathsFrom::kRunLayout) return s;  // report.runs: the run's models
  const Json& runs = config.at("report.runs");
  const std::string origin = config.origin("report.runs");
  if (!runs.is_array())
    throw ConfigError("config key 'report.runs' (from " + origin + ") must be a list of {name, path}");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Json& r = runs[i];
    if (!r.is_object() || r.size() != 2 || !r.contains("name") || !r.contains("path") || !r["name"].is_string() ||
        !r["path"].is_string()) {
      throw ConfigError(
          "config key 'report.runs[" + std::to_string(i) + "]' (from " + origin + ") is " + r.dump() +
              "; expected {name: ..., path: RUN_DIR}",
          "a run directory is what finetune, train-router or train-experts wrote (it holds metrics.jsonl)");
    }
    s.runs.push_back({r["name"].get<std::string>(), r["path"].get<std::string>()});
  }
  return s;
}

RunSettings parse_run_settings(const ConfigTree& config) { return read_settings<RunSettings>(SettingReader(config)); }

}  // namespace svmoe
