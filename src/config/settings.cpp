#include "svmoe/config/settings.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

namespace {
const char* const kTrainKeys[] = {"steps",           "micro_batch",   "grad_accum",
                                  "sequence_length", "learning_rate", "min_lr_ratio",
                                  "warmup_steps",    "schedule",      "weight_decay",
                                  "beta1",           "beta2",         "eps",
                                  "grad_clip",       "log_every",     "eval_every",
                                  "eval_batches",    "save_every",    "keep_last",
                                  "precision",       "zero_stage",    "activation_checkpointing"};
}  // namespace

Json default_config() {
  const RuntimeSettings runtime;
  const ForwardSettings forward;
  const PrepareSettings prepare;
  const TokenizerTrainSettings train;
  const MergeSettings merge;
  const TrainSettings t;
  const FinetuneSettings finetune;
  const TrainRouterSettings router;
  const FewShotSettings fewshot;
  const RunSettings run;
  // A stage's own training settings: every `train` key, null = as in `train`.
  Json stage_train = Json::object();
  for (const char* key : kTrainKeys) stage_train[key] = nullptr;
  return Json{
      {"runtime",
       {{"device", runtime.device},
        {"log_level", runtime.log_level},
        {"threads", runtime.threads},
        {"seed", runtime.seed},
        {"distributed_timeout_s", runtime.distributed_timeout_s},
        {"expert_path", runtime.expert_path}}},
      {"forward",
       {{"model", nullptr},
        {"input", nullptr},
        {"output", nullptr},
        {"dtype", forward.dtype},
        {"compare", nullptr},
        {"atol", forward.atol}}},
      {"prepare",
       {{"corpus", Json::array()},
        {"text_field", prepare.text_field},
        {"category_field", prepare.category_field},
        {"skip_bad_lines", prepare.skip_bad_lines},
        {"output", nullptr},
        {"tokenizer", nullptr},
        {"tokenizer_train",
         {{"enabled", train.enabled},
          {"vocab_size", train.vocab_size},
          {"model_type", train.model_type},
          {"character_coverage", train.character_coverage},
          {"input_sentence_size", train.input_sentence_size}}},
        {"num_subdomains", prepare.num_subdomains},
        {"categories", Json::array()},
        {"pinned_categories", Json::array()},
        {"neighbors", prepare.neighbors},
        {"cluster_sizes", prepare.cluster_sizes},
        {"size_tolerance", prepare.size_tolerance},
        {"equity_fraction", prepare.equity_fraction},
        {"split",
         {{"train", prepare.train_fraction}, {"valid", prepare.valid_fraction}, {"test", prepare.test_fraction}}},
        {"add_bos", prepare.add_bos},
        {"add_eos", prepare.add_eos},
        {"threads", prepare.threads},
        {"buffer_mb", prepare.buffer_mb}}},
      {"merge",
       {{"experts", Json::array()},
        {"output", nullptr},
        {"num_experts_per_tok", merge.num_experts_per_tok},
        {"router_aux_loss_coef", merge.router_aux_loss_coef},
        {"router_init_std", merge.router_init_std},
        {"max_shard_mb", merge.max_shard_mb}}},
      {"train",
       {{"steps", t.steps},
        {"micro_batch", t.micro_batch},
        {"grad_accum", t.grad_accum},
        {"sequence_length", t.sequence_length},
        {"learning_rate", t.learning_rate},
        {"min_lr_ratio", t.min_lr_ratio},
        {"warmup_steps", t.warmup_steps},
        {"schedule", t.schedule},
        {"weight_decay", t.weight_decay},
        {"beta1", t.beta1},
        {"beta2", t.beta2},
        {"eps", t.eps},
        {"grad_clip", t.grad_clip},
        {"log_every", t.log_every},
        {"eval_every", t.eval_every},
        {"eval_batches", t.eval_batches},
        {"save_every", t.save_every},
        {"keep_last", t.keep_last},
        {"precision", t.precision},
        {"zero_stage", t.zero_stage},
        {"activation_checkpointing", t.activation_checkpointing}}},
      {"train_experts",
       {{"base_model", nullptr},
        {"init", "pretrained"},
        {"dataset", nullptr},
        {"output", nullptr},
        {"experts", Json::array()},
        {"train", stage_train}}},
      {"finetune",
       {{"model", nullptr},
        {"init", finetune.init},
        {"dataset", nullptr},
        {"subdomains", Json::array()},
        {"subdomain_weights", Json::array()},
        {"output", nullptr},
        {"load_balancing",
         {{"method", finetune.load_balancing.method},
          {"alpha", finetune.load_balancing.alpha},
          {"pooling", finetune.load_balancing.pooling},
          {"aux_free_rate", finetune.load_balancing.aux_free_rate}}},
        {"train", stage_train}}},
      {"eval",
       {{"models", Json::array()},
        {"dataset", nullptr},
        {"splits", Json::array({"test"})},
        {"output", nullptr},
        {"context_length", 0},
        {"max_documents", 0},
        {"btm", {{"experts", Json::array()}, {"name", "BTM ensemble"}}},
        {"fewshot",
         {{"items", nullptr},
          {"shot_file", nullptr},
          {"k", fewshot.k},
          {"prompt", fewshot.prompt},
          {"answers", fewshot.answers},
          {"separator", fewshot.separator}}}}},
      {"report", {{"runs", Json::array()}, {"text", ""}, {"layer", 0}, {"output", nullptr}}},
      {"train_router",
       {{"model", nullptr},
        {"dataset", nullptr},
        {"output", nullptr},
        {"missing_target", router.missing_target},
        {"detach_router_inputs", router.detach_router_inputs},
        {"train", stage_train}}},
      {"run",
       {{"dir", nullptr},
        {"base_model", nullptr},
        {"pretrain_base", {{"enabled", run.pretrain_base}, {"train", stage_train}}},
        {"models", run.models},
        {"lb_method", run.lb_method},
        {"btm_ensemble", run.btm_ensemble}}},
  };
}

RuntimeSettings parse_runtime_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RuntimeSettings s;
  s.device = read.string("runtime.device");
  if (s.device != "auto" && s.device != "cpu" && !starts_with(s.device, "cuda")) {
    throw ConfigError(
        "config key 'runtime.device' (from " + config.origin("runtime.device") + ") is '" + s.device + "'",
        "use auto, cpu, cuda or cuda:N");
  }
  s.log_level = read.choice("runtime.log_level", {"trace", "debug", "info", "warn", "error", "off"});
  s.threads = static_cast<int>(read.integer("runtime.threads", 0, 4096));
  s.seed = static_cast<std::uint64_t>(read.integer("runtime.seed", 0, std::numeric_limits<std::int64_t>::max()));
  s.distributed_timeout_s = read.integer("runtime.distributed_timeout_s", 1, 7 * 24 * 3600);
  s.expert_path = read.choice("runtime.expert_path", {"auto", "loop", "grouped"});
  return s;
}

ForwardSettings parse_forward_settings(const ConfigTree& config) {
  const SettingReader read(config);
  ForwardSettings s;
  s.model = read.path("forward.model", true, "give --model DIR (a Hugging Face checkpoint directory)");
  s.input = read.path("forward.input", true, "give --input IN.safetensors holding int64 input_ids [B, T]");
  s.output = read.path("forward.output", false);
  s.dtype = read.choice("forward.dtype", {"float32", "bfloat16", "float16", "auto"});
  s.compare = read.path("forward.compare", false);
  s.atol = read.number("forward.atol", 0.0, std::numeric_limits<double>::infinity());
  if (s.output.empty() && s.compare.empty()) {
    throw ConfigError("svmoe forward has nothing to do: neither forward.output nor forward.compare is set",
                      "give --output OUT.safetensors, --compare EXPECTED.safetensors, or both");
  }
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
  s.output = read.path("prepare.output", true, "give the dataset directory to write (prepare.output or --output)");
  s.tokenizer_train.enabled = read.boolean("prepare.tokenizer_train.enabled");
  s.tokenizer = read.path("prepare.tokenizer", !s.tokenizer_train.enabled,
                          "give the model's tokenizer (a directory, tokenizer.json or tokenizer.model), or set "
                          "prepare.tokenizer_train.enabled: true to train one on the corpus");
  if (s.tokenizer_train.enabled && !s.tokenizer.empty()) {
    throw ConfigError("both prepare.tokenizer and prepare.tokenizer_train.enabled are set",
                      "use the given tokenizer, or train one: not both");
  }
  s.tokenizer_train.vocab_size = read.integer("prepare.tokenizer_train.vocab_size", 100, 1 << 22);
  s.tokenizer_train.model_type = read.choice("prepare.tokenizer_train.model_type", {"unigram", "bpe"});
  s.tokenizer_train.character_coverage = read.number("prepare.tokenizer_train.character_coverage", 0.5, 1.0);
  s.tokenizer_train.input_sentence_size = read.integer("prepare.tokenizer_train.input_sentence_size", 1, 1ll << 40);
  s.num_subdomains = static_cast<int>(read.integer("prepare.num_subdomains", 1, 4096));
  s.categories = read.strings("prepare.categories");
  s.pinned_categories = read.strings("prepare.pinned_categories");
  for (const auto& pinned : s.pinned_categories) {
    if (!s.categories.empty() && std::find(s.categories.begin(), s.categories.end(), pinned) == s.categories.end()) {
      throw ConfigError("pinned category '" + pinned + "' is not in prepare.categories",
                        "add it to prepare.categories, or leave prepare.categories empty to keep every category");
    }
  }
  s.neighbors = static_cast<int>(read.integer("prepare.neighbors", 0, 1 << 20));
  s.cluster_sizes = read.choice("prepare.cluster_sizes", {"strict", "equity"});
  s.size_tolerance = static_cast<int>(read.integer("prepare.size_tolerance", 1, 1 << 20));
  s.equity_fraction = read.number("prepare.equity_fraction", 0.0, 1.0);
  if (s.equity_fraction <= 0.0) {
    throw ConfigError(
        "config key 'prepare.equity_fraction' is " + std::to_string(s.equity_fraction) + ", expected a value in (0, 1]",
        "0.3 is the cited implementation's default; 1 asks for sizes as equal as possible");
  }
  s.train_fraction = read.number("prepare.split.train", 0.0, 1.0);
  s.valid_fraction = read.number("prepare.split.valid", 0.0, 1.0);
  s.test_fraction = read.number("prepare.split.test", 0.0, 1.0);
  const double total = s.train_fraction + s.valid_fraction + s.test_fraction;
  if (std::abs(total - 1.0) > 1e-9 || s.train_fraction <= 0) {
    throw ConfigError("prepare.split fractions (train " + Json(s.train_fraction).dump() + ", valid " +
                          Json(s.valid_fraction).dump() + ", test " + Json(s.test_fraction).dump() + ") sum to " +
                          Json(total).dump(),
                      "they must sum to 1 with a positive train fraction, e.g. 0.8 / 0.1 / 0.1");
  }
  s.add_bos = read.boolean("prepare.add_bos");
  s.add_eos = read.boolean("prepare.add_eos");
  s.threads = static_cast<int>(read.integer("prepare.threads", 0, 4096));
  s.buffer_mb = read.integer("prepare.buffer_mb", 1, 1 << 20);
  return s;
}

MergeSettings parse_merge_settings(const ConfigTree& config) {
  const SettingReader read(config);
  MergeSettings s;
  for (const auto& path : read.strings("merge.experts")) s.experts.emplace_back(path);
  if (s.experts.size() < 2) {
    throw ConfigError("config key 'merge.experts' lists " + std::to_string(s.experts.size()) +
                          " expert(s); a mixture needs at least 2",
                      "list the N expert checkpoint directories (svmoe train-experts writes experts/expert_n)");
  }
  s.output = read.path("merge.output", true, "give the MoE directory to write (merge.output or --output)");
  s.num_experts_per_tok = read.integer("merge.num_experts_per_tok", 1, static_cast<std::int64_t>(s.experts.size()));
  s.router_aux_loss_coef = read.number("merge.router_aux_loss_coef", 0.0, 1e6);
  s.router_init_std = read.number("merge.router_init_std", 0.0, 1e6);
  s.max_shard_mb = read.integer("merge.max_shard_mb", 1, 1 << 30);
  return s;
}

namespace {
std::vector<std::int64_t> subdomain_list(const ConfigTree& config, const std::string& key) {
  const Json& value = config.at(key);
  if (!value.is_array()) throw ConfigError("config key '" + key + "' must be a list of subdomain numbers");
  std::vector<std::int64_t> list;
  for (const auto& n : value) {
    if (!n.is_number_integer() || n.get<std::int64_t>() < 0) {
      throw ConfigError("config key '" + key + "' holds " + n.dump() + "; expected subdomain numbers (0, 1, ...)");
    }
    list.push_back(n.get<std::int64_t>());
  }
  return list;
}
}  // namespace

namespace {
// The tree with a stage's own `STAGE.train` keys (non-null) in place of the `train` ones.
ConfigTree with_stage_train(const ConfigTree& stage_config, const std::string& stage) {
  ConfigTree config = stage_config;
  if (!stage.empty()) {
    for (const char* key : kTrainKeys) {
      const std::string own = stage + ".train." + key;
      if (!stage_config.at(own).is_null()) {
        config.set(std::string("train.") + key, stage_config.at(own), stage_config.origin(own) + ", as " + own);
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
  const std::int64_t big = std::int64_t{1} << 40;
  t.steps = read.integer("train.steps", 1, big);
  t.micro_batch = read.integer("train.micro_batch", 1, 1 << 20);
  t.grad_accum = read.integer("train.grad_accum", 1, 1 << 20);
  t.sequence_length = read.integer("train.sequence_length", 1, 1 << 24);
  t.learning_rate = read.number("train.learning_rate", 0.0, 10.0);
  t.min_lr_ratio = read.number("train.min_lr_ratio", 0.0, 1.0);
  t.warmup_steps = read.integer("train.warmup_steps", 0, big);
  t.schedule = read.choice("train.schedule", {"cosine", "linear", "constant"});
  t.weight_decay = read.number("train.weight_decay", 0.0, 10.0);
  t.beta1 = read.number("train.beta1", 0.0, 0.999999);
  t.beta2 = read.number("train.beta2", 0.0, 0.999999);
  t.eps = read.number("train.eps", 0.0, 1.0);
  t.grad_clip = read.number("train.grad_clip", 0.0, 1e9);
  t.log_every = read.integer("train.log_every", 1, big);
  t.eval_every = read.integer("train.eval_every", 0, big);
  t.eval_batches = read.integer("train.eval_batches", 1, big);
  t.save_every = read.integer("train.save_every", 0, big);
  t.keep_last = read.integer("train.keep_last", 1, 1 << 20);
  t.precision = read.choice("train.precision", {"auto", "float32", "bf16_mixed", "bf16"});
  t.zero_stage = read.integer("train.zero_stage", 0, 1);
  t.activation_checkpointing = read.boolean("train.activation_checkpointing");
  return t;
}

FinetuneSettings parse_finetune_settings(const ConfigTree& config) {
  const SettingReader read(config);
  FinetuneSettings s;
  s.model = read.path("finetune.model", true,
                      "give the model to train (a Hugging Face directory; finetune.model or --model)");
  s.init = read.choice("finetune.init", {"pretrained", "random"});
  s.dataset =
      read.path("finetune.dataset", true, "give a dataset directory written by svmoe prepare (finetune.dataset)");
  s.subdomains = subdomain_list(config, "finetune.subdomains");
  s.output = read.path("finetune.output", true, "give the run directory (finetune.output or --output)");
  const Json& weights = config.at("finetune.subdomain_weights");
  if (!weights.is_array()) throw ConfigError("config key 'finetune.subdomain_weights' must be a list of numbers");
  for (const auto& w : weights) {
    if (!w.is_number() || !(w.get<double>() > 0)) {
      throw ConfigError("config key 'finetune.subdomain_weights' (from " + config.origin("finetune.subdomain_weights") +
                        ") holds " + w.dump() + "; expected positive numbers");
    }
    s.subdomain_weights.push_back(w.get<double>());
  }
  if (!s.subdomain_weights.empty() && s.subdomain_weights.size() != s.subdomains.size()) {
    throw ConfigError("config key 'finetune.subdomain_weights' has " + std::to_string(s.subdomain_weights.size()) +
                          " weights for " + std::to_string(s.subdomains.size()) + " subdomains",
                      "list the subdomains in finetune.subdomains and one weight for each");
  }
  auto& lb = s.load_balancing;
  lb.method = read.choice("finetune.load_balancing.method", {"none", "switch", "aux_free"});
  lb.alpha = read.number("finetune.load_balancing.alpha", 0.0, 1e6);
  lb.pooling = read.choice("finetune.load_balancing.pooling", {"pooled", "per_layer"});
  lb.aux_free_rate = read.number("finetune.load_balancing.aux_free_rate", 0.0, 1e6);
  return s;
}

TrainExpertsSettings parse_train_experts_settings(const ConfigTree& config) {
  const SettingReader read(config);
  TrainExpertsSettings s;
  s.base_model =
      read.path("train_experts.base_model", true,
                "give the dense base model (a Hugging Face directory; train_experts.base_model or --base-model)");
  s.init = read.choice("train_experts.init", {"pretrained", "random"});
  s.dataset = read.path("train_experts.dataset", true, "give a dataset directory written by svmoe prepare");
  s.output = read.path("train_experts.output", true, "give the experts directory (train_experts.output or --output)");
  s.experts = subdomain_list(config, "train_experts.experts");
  return s;
}

TrainRouterSettings parse_train_router_settings(const ConfigTree& config) {
  const SettingReader read(config);
  TrainRouterSettings s;
  s.model = read.path("train_router.model", true,
                      "give the merged MoE (svmoe merge's output; train_router.model or --model)");
  s.dataset = read.path("train_router.dataset", true,
                        "give the dataset svmoe prepare wrote (its TF-IDF targets; train_router.dataset)");
  s.output = read.path("train_router.output", true, "give the run directory (train_router.output or --output)");
  s.missing_target = read.choice("train_router.missing_target", {"mask", "uniform"});
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
  s.dataset = read.path("eval.dataset", true, "give the dataset svmoe prepare wrote (eval.dataset)");
  s.splits = read.strings("eval.splits");
  for (const auto& split : s.splits) {
    if (split != "train" && split != "valid" && split != "test") {
      throw ConfigError("config key 'eval.splits' (from " + config.origin("eval.splits") + ") holds '" + split +
                        "'; expected train, valid or test");
    }
  }
  s.output = read.path("eval.output", true, "give the directory for the tables (eval.output or --output)");
  s.context_length = read.integer("eval.context_length", 0, 1 << 24);
  s.max_documents = read.integer("eval.max_documents", 0, std::int64_t{1} << 40);
  for (const auto& expert : read.strings("eval.btm.experts")) s.btm.experts.emplace_back(expert);
  s.btm.name = read.string("eval.btm.name");
  auto& f = s.fewshot;
  f.items = read.path("eval.fewshot.items", false);
  f.shot_file = read.path("eval.fewshot.shot_file", !f.items.empty(),
                          "few-shot items need a file of solved shots (eval.fewshot.shot_file)");
  f.k = read.integer("eval.fewshot.k", 0, 1000);
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
  s.layer = read.integer("report.layer", 0, 1 << 20);
  s.output = read.path("report.output", false);
  return s;
}

void SettingReader::fail(const std::string& key_path, const std::string& expected, const std::string& hint) const {
  throw ConfigError("config key '" + key_path + "' (from " + config_.origin(key_path) + ") is " +
                        config_.at(key_path).dump() + "; expected " + expected,
                    hint);
}

std::string SettingReader::string(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_string()) fail(key_path, "a string");
  return value.get<std::string>();
}

std::string SettingReader::choice(const std::string& key_path, const std::vector<std::string>& options) const {
  const Json& value = config_.at(key_path);
  if (value.is_string()) {
    for (const auto& option : options) {
      if (value.get<std::string>() == option) return option;
    }
    const std::string suggestion = nearest_word(value.get<std::string>(), options);
    if (!suggestion.empty()) fail(key_path, "one of " + join(options, ", "), "did you mean '" + suggestion + "'?");
  }
  fail(key_path, "one of " + join(options, ", "));
}

std::int64_t SettingReader::integer(const std::string& key_path, std::int64_t min, std::int64_t max) const {
  const Json& value = config_.at(key_path);
  if (!value.is_number_integer()) fail(key_path, "an integer");
  const auto result = value.get<std::int64_t>();
  if (result < min || result > max) {
    fail(key_path, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return result;
}

double SettingReader::number(const std::string& key_path, double min, double max) const {
  const Json& value = config_.at(key_path);
  if (!value.is_number()) fail(key_path, "a number");
  const auto result = value.get<double>();
  if (!(result >= min && result <= max)) {
    fail(key_path, "a number in [" + Json(min).dump() + ", " + Json(max).dump() + "]");
  }
  return result;
}

bool SettingReader::boolean(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_boolean()) fail(key_path, "true or false");
  return value.get<bool>();
}

std::vector<std::string> SettingReader::strings(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (value.is_string()) return {value.get<std::string>()};
  if (!value.is_array()) fail(key_path, "a list of strings");
  std::vector<std::string> result;
  for (const auto& item : value) {
    if (!item.is_string()) fail(key_path, "a list of strings");
    result.push_back(item.get<std::string>());
  }
  return result;
}

std::filesystem::path SettingReader::path(const std::string& key_path, bool required, const std::string& hint) const {
  const Json& value = config_.at(key_path);
  if (value.is_null() || (value.is_string() && value.get<std::string>().empty())) {
    if (required) throw ConfigError("config key '" + key_path + "' is required but not set", hint);
    return {};
  }
  if (!value.is_string()) fail(key_path, "a path (a string)", hint);
  return value.get<std::string>();
}

RunSettings parse_run_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RunSettings s;
  s.dir = read.path("run.dir", true, "give the experiment directory that holds every stage's output (run.dir)");
  s.pretrain_base = read.boolean("run.pretrain_base.enabled");
  s.base_model = read.path("run.base_model", true,
                           s.pretrain_base ? "give a directory whose config.json describes the base model to pretrain"
                                           : "give the dense base model, a Hugging Face directory (run.base_model)");
  s.models = read.strings("run.models");
  const std::vector<std::string> known = {"dense", "btx", "btx_lb", "svmoe", "svmoe_lb"};
  for (const auto& model : s.models) {
    if (std::find(known.begin(), known.end(), model) == known.end()) {
      throw ConfigError("config key 'run.models' (from " + config.origin("run.models") + ") names '" + model + "'",
                        "the models of the paper's tables are " + join(known, ", "));
    }
  }
  s.lb_method = read.choice("run.lb_method", {"switch", "aux_free"});
  s.btm_ensemble = read.boolean("run.btm_ensemble");
  return s;
}

}  // namespace svmoe
