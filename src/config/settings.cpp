#include "svmoe/config/settings.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "svmoe/config/setting_reader.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

RuntimeSettings parse_runtime_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RuntimeSettings s;
  s.device = read.string("runtime.device");
  if (s.device != "auto" && s.device != "cpu" && !starts_with(s.device, "cuda")) {
    throw ConfigError(
        "config key 'runtime.device' (from " + config.origin("runtime.device") + ") is '" + s.device + "'",
        "use auto, cpu, cuda or cuda:N");
  }
  s.log_level = read.choice("runtime.log_level");
  s.threads = static_cast<int>(read.integer("runtime.threads"));
  s.seed = static_cast<std::uint64_t>(read.integer("runtime.seed"));
  s.distributed_timeout_s = read.integer("runtime.distributed_timeout_s");
  s.expert_path = read.option<ExpertPath>("runtime.expert_path");
  s.tensorboard = read.boolean("runtime.tensorboard");
  return s;
}

ForwardSettings parse_forward_settings(const ConfigTree& config) {
  const SettingReader read(config);
  ForwardSettings s;
  s.model = read.path("forward.model", "give --model DIR (a Hugging Face checkpoint directory)");
  s.input = read.path("forward.input", "give --input IN.safetensors holding int64 input_ids [B, T]");
  s.output = read.path("forward.output");
  s.dtype = read.option<ForwardDtype>("forward.dtype");
  s.compare = read.path("forward.compare");
  s.atol = read.number("forward.atol");
  if (s.output.empty() && s.compare.empty()) {
    throw ConfigError("svmoe forward has nothing to do: neither forward.output nor forward.compare is set",
                      "give --output OUT.safetensors, --compare EXPECTED.safetensors, or both");
  }
  return s;
}

GenerateSettings parse_generate_settings(const ConfigTree& config) {
  const SettingReader read(config);
  GenerateSettings s;
  s.model = read.path("generate.model", "give --model DIR (a Hugging Face checkpoint directory)");
  s.prompts = read.strings("generate.prompts");
  s.prompts_file = read.path("generate.prompts_file");
  s.output = read.path("generate.output");
  s.max_new_tokens = read.integer("generate.max_new_tokens");
  s.temperature = read.number("generate.temperature");
  s.top_k = read.integer("generate.top_k");
  s.top_p = read.number("generate.top_p");
  s.repetition_penalty = read.number("generate.repetition_penalty");
  s.stop = read.strings("generate.stop");
  s.batch_size = read.integer("generate.batch_size");
  s.kv_cache = read.boolean("generate.kv_cache");
  s.routing = read.boolean("generate.routing");
  s.dtype = read.option<ForwardDtype>("generate.dtype");
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
  ServeSettings s;
  s.model = read.path("serve.model", "give --model DIR (a Hugging Face checkpoint directory)");
  s.model_name = read.string("serve.model_name");
  s.host = read.string("serve.host");
  s.port = read.integer("serve.port");
  s.api_key = read.string("serve.api_key");
  s.max_batch_size = read.integer("serve.max_batch_size");
  s.max_queued = read.integer("serve.max_queued");
  s.max_request_bytes = read.integer("serve.max_request_bytes");
  s.max_prompt_tokens = read.integer("serve.max_prompt_tokens");
  s.max_tokens = read.integer("serve.max_tokens");
  s.default_max_tokens = read.integer("serve.default_max_tokens");
  s.max_logprobs = read.integer("serve.max_logprobs");
  s.http_threads = read.integer("serve.http_threads");
  s.kv_cache = read.boolean("serve.kv_cache");
  s.dtype = read.option<ForwardDtype>("serve.dtype");
  if (s.default_max_tokens > s.max_tokens) {
    read.fail("serve.default_max_tokens", "at most serve.max_tokens (" + std::to_string(s.max_tokens) + ")",
              "raise serve.max_tokens or lower serve.default_max_tokens");
  }
  if (s.host.empty()) read.fail("serve.host", "an address to bind", "127.0.0.1 (this machine only) or 0.0.0.0 (all)");
  return s;
}

PrepareSettings parse_prepare_settings(const ConfigTree& config) {
  const SettingReader read(config);
  PrepareSettings s;
  for (const auto& path : read.strings("prepare.corpus")) s.corpus.emplace_back(path);
  if (s.corpus.empty()) {
    throw ConfigError("config key 'prepare.corpus' is empty", "list the corpus's JSONL files or directories");
  }
  s.text_field = read.string("prepare.text_field");
  s.category_field = read.string("prepare.category_field");
  s.skip_bad_lines = read.boolean("prepare.skip_bad_lines");
  s.output = read.path("prepare.output", "give the dataset directory to write (prepare.output or --output)");
  s.tokenizer_train.enabled = read.boolean("prepare.tokenizer_train.enabled");
  s.tokenizer = read.path("prepare.tokenizer", !s.tokenizer_train.enabled,
                          "give the model's tokenizer (a directory, tokenizer.json or tokenizer.model), or set "
                          "prepare.tokenizer_train.enabled: true to train one on the corpus");
  if (s.tokenizer_train.enabled && !s.tokenizer.empty()) {
    throw ConfigError("both prepare.tokenizer and prepare.tokenizer_train.enabled are set",
                      "use the given tokenizer, or train one: not both");
  }
  s.tokenizer_train.vocab_size = read.integer("prepare.tokenizer_train.vocab_size");
  s.tokenizer_train.model_type = read.option<TokenizerModelType>("prepare.tokenizer_train.model_type");
  s.tokenizer_train.character_coverage = read.number("prepare.tokenizer_train.character_coverage");
  s.tokenizer_train.input_sentence_size = read.integer("prepare.tokenizer_train.input_sentence_size");
  s.num_subdomains = static_cast<int>(read.integer("prepare.num_subdomains"));
  s.categories = read.strings("prepare.categories");
  s.pinned_categories = read.strings("prepare.pinned_categories");
  for (const auto& pinned : s.pinned_categories) {
    if (!s.categories.empty() && std::find(s.categories.begin(), s.categories.end(), pinned) == s.categories.end()) {
      throw ConfigError("pinned category '" + pinned + "' is not in prepare.categories",
                        "add it to prepare.categories, or leave prepare.categories empty to keep every category");
    }
  }
  for (const auto& [category, id] : read.integer_mapping("prepare.subdomain_of", 1, s.num_subdomains)) {
    s.subdomain_of[category] = static_cast<int>(id);
  }
  if (!s.subdomain_of.empty() && !s.pinned_categories.empty()) {
    throw ConfigError("both prepare.subdomain_of and prepare.pinned_categories are set",
                      "prepare.subdomain_of gives every category's subdomain (a pinned category is one alone in its "
                      "subdomain there): leave prepare.pinned_categories empty");
  }
  s.neighbors = static_cast<int>(read.integer("prepare.neighbors"));
  s.cluster_sizes = read.option<ClusterSizes>("prepare.cluster_sizes");
  s.size_tolerance = static_cast<int>(read.integer("prepare.size_tolerance"));
  s.equity_fraction = read.number("prepare.equity_fraction");
  if (s.equity_fraction <= 0.0) {
    throw ConfigError(
        "config key 'prepare.equity_fraction' is " + std::to_string(s.equity_fraction) + ", expected a value in (0, 1]",
        "0.3 is the cited implementation's default; 1 asks for sizes as equal as possible");
  }
  s.train_fraction = read.number("prepare.split.train");
  s.valid_fraction = read.number("prepare.split.valid");
  s.test_fraction = read.number("prepare.split.test");
  const double total = s.train_fraction + s.valid_fraction + s.test_fraction;
  if (std::abs(total - 1.0) > 1e-9 || s.train_fraction <= 0) {
    throw ConfigError("prepare.split fractions (train " + Json(s.train_fraction).dump() + ", valid " +
                          Json(s.valid_fraction).dump() + ", test " + Json(s.test_fraction).dump() + ") sum to " +
                          Json(total).dump(),
                      "they must sum to 1 with a positive train fraction, e.g. 0.8 / 0.1 / 0.1");
  }
  s.add_bos = read.boolean("prepare.add_bos");
  s.add_eos = read.boolean("prepare.add_eos");
  s.threads = static_cast<int>(read.integer("prepare.threads"));
  s.buffer_mb = read.integer("prepare.buffer_mb");
  return s;
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

MergeSettings parse_merge_settings(const ConfigTree& config) {
  const SettingReader read(config);
  MergeSettings s;
  s.method = read.option<MergeMethod>("merge.method");
  for (const auto& path : read.strings("merge.experts")) s.experts.emplace_back(path);
  s.num_experts = read.integer("merge.num_experts");
  const std::string method = enum_name(s.method);
  s.shared_expert = read.option<SharedExpertInit>("merge.shared_expert");
  if (merge_method_spec(s.method).merges_trained_experts()) {
    if (s.experts.size() < 2) {
      throw ConfigError("config key 'merge.experts' lists " + std::to_string(s.experts.size()) +
                            " expert(s); merge.method " + method + " merges at least 2 trained experts",
                        "list the N expert checkpoint directories (svmoe train-experts writes experts/expert_n), "
                        "or upcycle one dense model with merge.method naive, noise or drop_upcycling");
    }
    if (s.shared_expert == SharedExpertInit::kBase) {
      s.base_model = read.path("merge.base_model", true,
                               "merge.shared_expert base copies the FFN of the dense model the experts were "
                               "trained from: give it (merge.base_model or --base-model)");
    } else if (!read.path("merge.base_model").empty()) {
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
    s.base_model = read.path("merge.base_model", true,
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
  s.output = read.path("merge.output", "give the MoE directory to write (merge.output or --output)");
  s.moe_kind = read.option<MoeKind>("merge.moe_kind");
  if (s.shared_expert != SharedExpertInit::kNone && s.moe_kind == MoeKind::kSoft) {
    read.fail("merge.shared_expert", "none with merge.moe_kind soft (the shared expert is Qwen2-MoE's, a sparse MoE)",
              "set merge.shared_expert: none, or merge.moe_kind: sparse");
  }
  s.num_experts_per_tok = read.integer("merge.num_experts_per_tok");
  if (s.num_experts_per_tok > s.num_experts) {
    read.fail("merge.num_experts_per_tok", "at most the number of experts (" + std::to_string(s.num_experts) + ")");
  }
  s.router_init = read.option<RouterInit>("merge.router_init");
  s.router_init_std = read.number("merge.router_init_std");
  s.drop_ratio = read.number("merge.drop_ratio");
  s.noise_std = read.number("merge.noise_std");
  s.max_shard_mb = read.integer("merge.max_shard_mb");
  return s;
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

Json resolved_train_section(const ConfigTree& config, const std::string& stage) {
  return with_stage_train(config, stage).at("train");
}

TrainSettings parse_train_settings(const ConfigTree& stage_config, const std::string& stage) {
  const ConfigTree config = with_stage_train(stage_config, stage);
  const SettingReader read(config);
  TrainSettings t;
  t.steps = read.integer("train.steps");
  t.micro_batch = read.integer("train.micro_batch");
  t.grad_accum = read.integer("train.grad_accum");
  t.sequence_length = read.integer("train.sequence_length");
  t.learning_rate = read.number("train.learning_rate");
  t.min_lr_ratio = read.number("train.min_lr_ratio");
  t.warmup_steps = read.integer("train.warmup_steps");
  t.schedule = read.option<LrSchedule>("train.schedule");
  t.weight_decay = read.number("train.weight_decay");
  t.beta1 = read.number("train.beta1");
  t.beta2 = read.number("train.beta2");
  t.eps = read.number("train.eps");
  t.grad_clip = read.number("train.grad_clip");
  t.log_every = read.integer("train.log_every");
  t.eval_every = read.integer("train.eval_every");
  t.eval_batches = read.integer("train.eval_batches");
  t.save_every = read.integer("train.save_every");
  t.keep_last = read.integer("train.keep_last");
  t.precision = read.option<Precision>("train.precision");
  t.zero_stage = read.integer("train.zero_stage");
  t.activation_checkpointing = read.boolean("train.activation_checkpointing");
  return t;
}

FinetuneSettings parse_finetune_settings(const ConfigTree& config) {
  const SettingReader read(config);
  FinetuneSettings s;
  s.model =
      read.path("finetune.model", "give the model to train (a Hugging Face directory; finetune.model or --model)");
  s.init = read.option<ModelInit>("finetune.init");
  s.dataset = read.path("finetune.dataset", "give a dataset directory written by svmoe prepare (finetune.dataset)");
  s.subdomains = read.integers("finetune.subdomains", 0);
  s.output = read.path("finetune.output", "give the run directory (finetune.output or --output)");
  s.subdomain_weights = read.positive_numbers("finetune.subdomain_weights");
  if (!s.subdomain_weights.empty() && s.subdomain_weights.size() != s.subdomains.size()) {
    throw ConfigError("config key 'finetune.subdomain_weights' has " + std::to_string(s.subdomain_weights.size()) +
                          " weights for " + std::to_string(s.subdomains.size()) + " subdomains",
                      "list the subdomains in finetune.subdomains and one weight for each");
  }
  auto& lb = s.load_balancing;
  lb.method = read.option<LoadBalancingMethod>("finetune.load_balancing.method");
  lb.alpha = read.number("finetune.load_balancing.alpha");
  lb.pooling = read.option<LoadBalancingPooling>("finetune.load_balancing.pooling");
  lb.aux_free_rate = read.number("finetune.load_balancing.aux_free_rate");
  return s;
}

TrainExpertsSettings parse_train_experts_settings(const ConfigTree& config) {
  const SettingReader read(config);
  TrainExpertsSettings s;
  s.base_model =
      read.path("train_experts.base_model",
                "give the dense base model (a Hugging Face directory; train_experts.base_model or --base-model)");
  s.init = read.option<ModelInit>("train_experts.init");
  s.dataset = read.path("train_experts.dataset", "give a dataset directory written by svmoe prepare");
  s.output = read.path("train_experts.output", "give the experts directory (train_experts.output or --output)");
  s.coverage = read.option<ExpertCoverage>("train_experts.coverage");
  s.experts = read.integers("train_experts.experts", 0);
  return s;
}

TrainRouterSettings parse_train_router_settings(const ConfigTree& config) {
  const SettingReader read(config);
  TrainRouterSettings s;
  s.model =
      read.path("train_router.model", "give the merged MoE (svmoe merge's output; train_router.model or --model)");
  s.dataset = read.path("train_router.dataset",
                        "give the dataset svmoe prepare wrote (its TF-IDF targets; train_router.dataset)");
  s.output = read.path("train_router.output", "give the run directory (train_router.output or --output)");
  s.missing_target = read.option<MissingTarget>("train_router.missing_target");
  s.loss = read.option<RouterLoss>("train_router.loss");
  s.teacher.split = read.option<TeacherSplit>("train_router.teacher_split");
  s.teacher.tf = read.option<TermFrequency>("train_router.teacher_tf");
  s.detach_router_inputs = read.boolean("train_router.detach_router_inputs");
  return s;
}

EvalSettings parse_eval_settings(const ConfigTree& config) {
  const SettingReader read(config);
  EvalSettings s;
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
    s.models.push_back(model);
  }
  s.dataset = read.path("eval.dataset", "give the dataset svmoe prepare wrote (eval.dataset)");
  s.splits = read.options<DataSplit>("eval.splits");
  s.output = read.path("eval.output", "give the directory for the tables (eval.output or --output)");
  s.context_length = read.integer("eval.context_length");
  s.max_documents = read.integer("eval.max_documents");
  for (const auto& expert : read.strings("eval.btm.experts")) s.btm.experts.emplace_back(expert);
  s.btm.coverage = read.option<ExpertCoverage>("eval.btm.coverage");
  s.btm.weighting = read.option<EnsembleWeighting>("eval.btm.weighting");
  s.btm.name = read.string("eval.btm.name");
  auto& f = s.fewshot;
  f.items = read.path("eval.fewshot.items");
  f.shot_file = read.path("eval.fewshot.shot_file", !f.items.empty(),
                          "few-shot items need a file of solved shots (eval.fewshot.shot_file)");
  f.k = read.integer("eval.fewshot.k");
  f.prompt = read.string("eval.fewshot.prompt");
  if (f.prompt.find("{statement}") == std::string::npos) {
    throw ConfigError(
        "config key 'eval.fewshot.prompt' (from " + config.origin("eval.fewshot.prompt") + ") has no {statement}",
        "write where the statement goes, e.g. \"{statement}\\n答え:\"");
  }
  f.answers = read.strings("eval.fewshot.answers");
  if (f.answers.size() != 2 || f.answers[0] == f.answers[1]) {
    throw ConfigError("config key 'eval.fewshot.answers' (from " + config.origin("eval.fewshot.answers") +
                      ") must be two different strings: the answer for false (label 0), then for true (label 1)");
  }
  f.separator = read.string("eval.fewshot.separator");
  f.draw = read.option<ShotDraw>("eval.fewshot.draw");
  return s;
}

ReportSettings parse_report_settings(const ConfigTree& config) {
  const SettingReader read(config);
  ReportSettings s;
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
  s.text = read.string("report.text");
  s.layer = read.integer("report.layer");
  s.output = read.path("report.output");
  return s;
}

RunSettings parse_run_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RunSettings s;
  s.dir = read.path("run.dir", "give the experiment directory that holds every stage's output (run.dir)");
  s.pretrain_base = read.boolean("run.pretrain_base.enabled");
  s.base_model = read.path("run.base_model",
                           s.pretrain_base ? "give a directory whose config.json describes the base model to pretrain"
                                           : "give the dense base model, a Hugging Face directory (run.base_model)");
  s.models.clear();
  for (const auto& name : read.strings("run.models")) s.models.push_back(*run_model_from_name(name));
  s.lb_method = *enum_from_name<LoadBalancingMethod>(read.choice("run.lb_method"));
  s.btm_ensemble = read.boolean("run.btm_ensemble");
  s.btm_coverage = read.option<ExpertCoverage>("run.btm_coverage");
  return s;
}

}  // namespace svmoe
