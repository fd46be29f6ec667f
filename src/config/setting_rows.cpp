#include "svmoe/config/setting_rows.h"

#include <limits>
#include <type_traits>

#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

// Every row below: a builder (its type), the member that holds it (at(&S::member), or a
// member of a member), its key, its range or choices, and its help line for docs/config.md.
// The default is not written here: it is the member's initialiser in config/settings.h.

constexpr std::int64_t kBig = std::int64_t{1} << 40;
constexpr double kNoMaximum = std::numeric_limits<double>::max();
using T = SettingType;

// Where a row's value lives in its settings struct S.
template <typename S, typename M>
struct Field {
  std::function<M&(S&)> get;
  std::function<const M&(const S&)> look;
};

template <typename S, typename M>
Field<S, M> at(M S::*member) {
  return {[member](S& settings) -> M& { return settings.*member; },
          [member](const S& settings) -> const M& { return settings.*member; }};
}

template <typename S, typename Inner, typename M>
Field<S, M> at(Inner S::*outer, M Inner::*member) {
  return {[outer, member](S& settings) -> M& { return (settings.*outer).*member; },
          [outer, member](const S& settings) -> const M& { return (settings.*outer).*member; }};
}

// A member's value as a config file writes it (the row's default is that of a default struct).
Json config_value(const std::string& text) { return text; }
Json config_value(const std::filesystem::path& path) { return path.empty() ? Json() : Json(path.string()); }
Json config_value(bool flag) { return flag; }
Json config_value(double number) { return number; }
template <typename I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
Json config_value(I integer) {
  return static_cast<std::int64_t>(integer);
}
template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
Json config_value(E option) {
  return enum_name(option);
}
Json config_value(const RunModel& model) { return run_model_name(model); }
Json config_value(const std::map<std::string, int>& mapping) { return mapping.empty() ? Json() : Json(mapping); }
template <typename Item>
Json config_value(const std::vector<Item>& items) {
  Json list = Json::array();
  for (const auto& item : items) list.push_back(config_value(item));
  return list;
}

// Reads the row's key into the member, checked by the row (config/setting_reader.h).
void read_value(const SettingReader& read, const SettingSpec& row, std::string& out) {
  out = row.type == SettingType::kChoice ? read.choice(row.key) : read.string(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::filesystem::path& out) {
  out = read.path(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, bool& out) { out = read.boolean(row.key); }
void read_value(const SettingReader& read, const SettingSpec& row, double& out) { out = read.number(row.key); }
template <typename I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
void read_value(const SettingReader& read, const SettingSpec& row, I& out) {
  out = static_cast<I>(read.integer(row.key));  // the row's range fits the member's type
}
template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
void read_value(const SettingReader& read, const SettingSpec& row, E& out) {
  out = read.option<E>(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<std::string>& out) {
  out = read.strings(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<std::filesystem::path>& out) {
  out.clear();
  for (const auto& path : read.strings(row.key)) out.emplace_back(path);
}
template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<E>& out) {
  out = read.options<E>(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<std::int64_t>& out) {
  out = read.integers(row.key, 0);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<double>& out) {
  out = read.positive_numbers(row.key);
}
void read_value(const SettingReader& read, const SettingSpec& row, std::vector<RunModel>& out) {
  out.clear();
  for (const auto& name : read.strings(row.key)) out.push_back(*run_model_from_name(name));  // the row's choices
}

SettingSpec spec(std::string key, SettingType type, std::string help) {
  SettingSpec s;
  s.key = std::move(key);
  s.type = type;
  s.help = std::move(help);
  return s;
}

// The row bound to its member: read into S's member; its default is the member's value in a
// default S. (read_value needs only the row's key and type, which the flags chained on after
// this, .without_effect_on_numbers() and the like, leave as they are.)
template <typename S, typename M>
BoundSetting<S> bound(const Field<S, M>& field, SettingSpec row) {
  BoundSetting<S> result;
  result.value = [field](const S& settings) { return config_value(field.look(settings)); };
  row.default_value = result.value(S{});
  result.read = [field, row](const SettingReader& read, S& settings) { read_value(read, row, field.get(settings)); };
  result.spec = std::move(row);
  return result;
}

template <typename S, typename M>
BoundSetting<S> integer(const Field<S, M>& field, std::string key, std::int64_t min, std::int64_t max,
                        std::string help) {
  SettingSpec s = spec(std::move(key), T::kInteger, std::move(help));
  s.minimum = min;
  s.maximum = max;
  return bound(field, std::move(s));
}

template <typename S>
BoundSetting<S> number(const Field<S, double>& field, std::string key, double min, double max, std::string help) {
  SettingSpec s = spec(std::move(key), T::kNumber, std::move(help));
  s.minimum = min;
  s.maximum = max;
  return bound(field, std::move(s));
}

template <typename S>
BoundSetting<S> boolean(const Field<S, bool>& field, std::string key, std::string help) {
  return bound(field, spec(std::move(key), T::kBoolean, std::move(help)));
}

template <typename S>
BoundSetting<S> text(const Field<S, std::string>& field, std::string key, std::string help) {
  return bound(field, spec(std::move(key), T::kString, std::move(help)));
}

// A choice among `choices` (a string member, or an enum member offered only some of its names).
template <typename S, typename M>
BoundSetting<S> choice(const Field<S, M>& field, std::string key, std::vector<std::string> choices, std::string help) {
  SettingSpec s = spec(std::move(key), T::kChoice, std::move(help));
  s.choices = std::move(choices);
  return bound(field, std::move(s));
}

// A choice among every name of the member's enum (config/enums.h).
template <typename S, typename E>
BoundSetting<S> choice(const Field<S, E>& field, std::string key, std::string help) {
  static_assert(std::is_enum_v<E>, "a choice without a list of choices is an enum's");
  return choice(field, std::move(key), enum_names<E>(), std::move(help));
}

enum class Need { kRequired, kOptional };

template <typename S>
BoundSetting<S> path(const Field<S, std::filesystem::path>& field, std::string key, Need need, std::string help) {
  SettingSpec s = spec(std::move(key), T::kPath, std::move(help));
  s.required = need == Need::kRequired;
  return bound(field, std::move(s));
}

template <typename S, typename M>
BoundSetting<S> list(const Field<S, M>& field, std::string key, SettingType type, std::string help,
                     std::vector<std::string> choices = {}) {
  SettingSpec s = spec(std::move(key), type, std::move(help));
  s.choices = std::move(choices);
  return bound(field, std::move(s));
}

// Records or a mapping: its section's parser reads and checks it (config/settings.cpp).
template <typename S>
BoundSetting<S> unbound_list(std::string key, SettingType type, Json default_value, std::string help) {
  BoundSetting<S> result;
  result.spec = spec(std::move(key), type, std::move(help));
  result.spec.default_value = std::move(default_value);
  return result;
}

// A mapping whose values' range depends on another key: its section's parser reads it; its value
// is the member's (for the step hash).
template <typename S, typename M>
BoundSetting<S> mapping(const Field<S, M>& field, std::string key, std::string help) {
  BoundSetting<S> result = unbound_list<S>(std::move(key), T::kMapping, nullptr, std::move(help));
  result.value = [field](const S& settings) { return config_value(field.look(settings)); };
  result.spec.default_value = result.value(S{});
  return result;
}

// A stage's own `train` section: every `train` key, null = as in `train` (parse_train_settings).
template <typename S>
BoundSetting<S> train_overrides(std::string key) {
  return unbound_list<S>(std::move(key), T::kTrainOverrides, nullptr, "this stage's own `train` keys (see `train`)");
}

}  // namespace

template <>
const BoundSettings<RuntimeSettings>& bound_settings<RuntimeSettings>() {
  using S = RuntimeSettings;
  static const BoundSettings<S> rows = {
      text(at(&S::device), "runtime.device",
           "`auto` (CUDA if LibTorch has it and a GPU is present, else CPU), `cpu`, `cuda`, `cuda:N`")
          .without_effect_on_numbers(),
      choice(at(&S::log_level), "runtime.log_level", {"trace", "debug", "info", "warn", "error", "off"},
             "what the log shows")
          .without_effect_on_numbers(),
      integer(
          at(&S::threads), "runtime.threads", 0, 4096,
          "CPU intra-op threads; 0 = every CPU this process may use (its affinity: Slurm's --cpus-per-task, taskset)")
          .without_effect_on_numbers(),
      integer(at(&S::seed), "runtime.seed", 0, std::numeric_limits<std::int64_t>::max(), "random seed"),
      integer(at(&S::distributed_timeout_s), "runtime.distributed_timeout_s", 1, 7 * 24 * 3600,
              "data parallel: how long ranks wait for each other at the rendezvous and in collectives")
          .without_effect_on_numbers(),
      choice(at(&S::expert_path), "runtime.expert_path",
             "how MoE experts run (training, eval, forward): `grouped` (one grouped product per projection; "
             "`at::_grouped_mm` where LibTorch has it), `loop` (one expert at a time), `auto` (grouped where that "
             "kernel applies, else loop); both give the same result (docs/moe.md)")
          .without_effect_on_numbers(),
      boolean(at(&S::tensorboard), "runtime.tensorboard",
              "training runs also write their metrics as TensorBoard event files beside metrics.jsonl "
              "(`tensorboard --logdir EXPERIMENT_DIR`; docs/training.md)")
          .without_effect_on_numbers(),
  };
  return rows;
}

template <>
const BoundSettings<ForwardSettings>& bound_settings<ForwardSettings>() {
  using S = ForwardSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::model), "forward.model", Need::kRequired, "Hugging Face checkpoint directory")
          .if_missing("give --model DIR (a Hugging Face checkpoint directory)"),
      path(at(&S::input), "forward.input", Need::kRequired,
           "safetensors file with int64 `input_ids` [B, T] (a 1-D tensor is one sequence)")
          .if_missing("give --input IN.safetensors holding int64 input_ids [B, T]"),
      path(at(&S::output), "forward.output", Need::kOptional,
           "safetensors file to write: float32 `logits` [B, T, V] (+ `router_logits.{l}` for MoE)"),
      choice(at(&S::dtype), "forward.dtype", "compute dtype; `auto`: the checkpoint's"),
      path(at(&S::compare), "forward.compare", Need::kOptional,
           "safetensors file with expected outputs; exit code 7 when a difference exceeds `atol`"),
      number(at(&S::atol), "forward.atol", 0.0, kNoMaximum, "tolerance for `compare`"),
  };
  return rows;
}

template <>
const BoundSettings<GenerateSettings>& bound_settings<GenerateSettings>() {
  using S = GenerateSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::model), "generate.model", Need::kRequired,
           "Hugging Face checkpoint directory (its tokenizer beside it)")
          .if_missing("give --model DIR (a Hugging Face checkpoint directory)"),
      list(at(&S::prompts), "generate.prompts", T::kStrings, "prompts (`--prompt`, repeatable)"),
      path(at(&S::prompts_file), "generate.prompts_file", Need::kOptional,
           "more prompts: a `.jsonl` file with a `prompt` string on each line, or a text file with one prompt a "
           "line (empty lines skipped)"),
      path(at(&S::output), "generate.output", Need::kOptional,
           "JSONL file to write: prompt, completion, token counts and finish reason (and routing) per prompt"),
      integer(at(&S::max_new_tokens), "generate.max_new_tokens", 1, 1 << 20, "tokens to generate at most"),
      number(at(&S::temperature), "generate.temperature", 0.0, 100.0,
             "sampling temperature; 0: greedy (the most likely token each step)"),
      integer(at(&S::top_k), "generate.top_k", 0, 1 << 30, "sample from the k most likely tokens; 0: all"),
      number(at(&S::top_p), "generate.top_p", 0.0, 1.0,
             "sample from the smallest set of most likely tokens whose probability reaches p (nucleus); 1: all"),
      number(at(&S::repetition_penalty), "generate.repetition_penalty", 0.0, 100.0,
             "transformers' repetition penalty (logits of tokens already in the text divided by it if positive, "
             "multiplied if negative); 1: none"),
      list(at(&S::stop), "generate.stop", T::kStrings,
           "stop strings (`--stop`, repeatable): the completion ends before the first one"),
      integer(at(&S::batch_size), "generate.batch_size", 1, 4096,
              "prompts generated together (left-padded to the longest)"),
      boolean(at(&S::kv_cache), "generate.kv_cache",
              "keep each layer's keys and values between steps; false recomputes the whole sequence every step "
              "(same tokens, for checks and speed comparisons)"),
      boolean(at(&S::routing), "generate.routing",
              "print (and write to `output`) the experts each generated token went to, per layer"),
      choice(at(&S::dtype), "generate.dtype", "compute dtype; `auto`: the checkpoint's"),
  };
  return rows;
}

template <>
const BoundSettings<ServeSettings>& bound_settings<ServeSettings>() {
  using S = ServeSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::model), "serve.model", Need::kRequired,
           "Hugging Face checkpoint directory to serve (its tokenizer beside it)")
          .if_missing("give --model DIR (a Hugging Face checkpoint directory)"),
      text(at(&S::model_name), "serve.model_name",
           "the model id clients name in requests and /v1/models lists; empty: the model directory's name"),
      text(at(&S::host), "serve.host",
           "address to listen on: 127.0.0.1 (this machine only); 0.0.0.0 to serve other machines (set an API key)"),
      integer(at(&S::port), "serve.port", 0, 65535, "TCP port; 0: any free port (the log says which)"),
      text(at(&S::api_key), "serve.api_key",
           "key clients must send as `Authorization: Bearer KEY`; empty: the SVMOE_API_KEY environment variable's, "
           "else none"),
      integer(at(&S::max_batch_size), "serve.max_batch_size", 1, 4096,
              "sequences (prompts x n) generated together; requests that arrive meanwhile wait for the next batch"),
      integer(at(&S::max_queued), "serve.max_queued", 1, 1 << 20,
              "sequences waiting for the model before new requests are refused (503)"),
      integer(at(&S::max_request_bytes), "serve.max_request_bytes", 1024, std::int64_t{1} << 30,
              "largest request body accepted (413 beyond it)"),
      integer(at(&S::max_prompt_tokens), "serve.max_prompt_tokens", 0, 1 << 24,
              "longest prompt accepted, in tokens; 0: the model's max_position_embeddings"),
      integer(at(&S::max_tokens), "serve.max_tokens", 1, 1 << 20, "the largest `max_tokens` a request may ask for"),
      integer(at(&S::default_max_tokens), "serve.default_max_tokens", 1, 1 << 20,
              "`max_tokens` of a request that gives none (OpenAI's default, 16)"),
      integer(at(&S::max_logprobs), "serve.max_logprobs", 0, 1000, "the largest `logprobs` a request may ask for"),
      integer(at(&S::http_threads), "serve.http_threads", 1, 4096,
              "connections served at once (each waits on the model thread; more queue in the kernel)"),
      boolean(at(&S::kv_cache), "serve.kv_cache",
              "keep keys and values between generation steps (false recomputes every step; same tokens)"),
      choice(at(&S::dtype), "serve.dtype", "compute dtype; `auto`: the checkpoint's"),
  };
  return rows;
}

template <>
const BoundSettings<PrepareSettings>& bound_settings<PrepareSettings>() {
  using S = PrepareSettings;
  static const BoundSettings<S> rows = {
      list(at(&S::corpus), "prepare.corpus", T::kStrings,
           "JSONL files (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`; the compression read from the bytes) or directories of "
           "them; a string or a list (required)"),
      text(at(&S::text_field), "prepare.text_field",
           "the JSON field of each line that holds the text: a top-level key, or a JSON pointer such as `/meta/text` "
           "for a nested one"),
      text(at(&S::category_field), "prepare.category_field",
           "the JSON field of each line that holds the category: a top-level key, or a JSON pointer such as "
           "`/meta/category`"),
      boolean(at(&S::skip_bad_lines), "prepare.skip_bad_lines",
              "skip and count malformed lines instead of stopping at the first"),
      path(at(&S::output), "prepare.output", Need::kRequired, "the dataset directory to write")
          .if_missing("give the dataset directory to write (prepare.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      path(at(&S::tokenizer), "prepare.tokenizer", Need::kOptional,
           "model directory, `tokenizer.json` or `tokenizer.model`; required unless `tokenizer_train.enabled`"),
      boolean(at(&S::tokenizer_train, &TokenizerTrainSettings::enabled), "prepare.tokenizer_train.enabled",
              "train a SentencePiece tokenizer on the corpus instead"),
      integer(at(&S::tokenizer_train, &TokenizerTrainSettings::vocab_size), "prepare.tokenizer_train.vocab_size", 100,
              1 << 22, "its vocabulary size"),
      choice(at(&S::tokenizer_train, &TokenizerTrainSettings::model_type), "prepare.tokenizer_train.model_type",
             "SentencePiece's model"),
      number(at(&S::tokenizer_train, &TokenizerTrainSettings::character_coverage),
             "prepare.tokenizer_train.character_coverage", 0.5, 1.0, "sentencepiece's character coverage"),
      integer(at(&S::tokenizer_train, &TokenizerTrainSettings::input_sentence_size),
              "prepare.tokenizer_train.input_sentence_size", 1, kBig, "sentences sampled for training"),
      integer(at(&S::num_subdomains), "prepare.num_subdomains", 1, 4096, "N, the number of subdomains (experts)"),
      list(at(&S::categories), "prepare.categories", T::kStrings,
           "if not empty, the categories to keep: documents of others are skipped and counted per category in the "
           "manifest (and warned about); a listed category without documents is an error"),
      list(at(&S::pinned_categories), "prepare.pinned_categories", T::kStrings,
           "categories that are subdomains of their own (0..P-1, in this order)"),
      mapping(at(&S::subdomain_of), "prepare.subdomain_of",
              "`{category: subdomain ID}` with IDs 1..N as the paper's Table 4 numbers them: the subdomains given, "
              "every category named once, instead of clustering (`pinned_categories` then stays empty); unset: "
              "clustering")
          .hashed_only_away_from_default(),
      integer(at(&S::neighbors), "prepare.neighbors", 0, 1 << 20,
              "k of the clustering's nearest-neighbour graph; 0: round(sqrt(M)) + 1"),
      choice(at(&S::cluster_sizes), "prepare.cluster_sizes",
             "how the clustering balances subdomain sizes: `strict` (k-means labels, then moves until sizes differ "
             "by at most `size_tolerance`) or `equity` (the cited implementation: \"discretize\" labels, sizes kept "
             "within `equity_fraction` bounds; docs/prepare.md)"),
      integer(at(&S::size_tolerance), "prepare.size_tolerance", 1, 1 << 20,
              "`strict`: largest allowed difference in categories between subdomains"),
      number(at(&S::equity_fraction), "prepare.equity_fraction", 0.0, 1.0,
             "`equity`: sizes are pushed into [min ideal x e, max ideal x (2 - e)]; 1 asks for equal sizes, small "
             "values accept natural clusters; must be > 0"),
      number(at(&S::train_fraction), "prepare.split.train", 0.0, 1.0,
             "document fraction per subdomain for training (the three sum to 1)"),
      number(at(&S::valid_fraction), "prepare.split.valid", 0.0, 1.0, "document fraction for validation"),
      number(at(&S::test_fraction), "prepare.split.test", 0.0, 1.0, "document fraction for test"),
      boolean(at(&S::add_bos), "prepare.add_bos", "put BOS before each document in the shards"),
      boolean(at(&S::add_eos), "prepare.add_eos", "put EOS after each document in the shards"),
      integer(at(&S::threads), "prepare.threads", 0, 4096,
              "tokenisation threads; 0: every CPU this process may use (its affinity)")
          .without_effect_on_numbers(),
      integer(at(&S::buffer_mb), "prepare.buffer_mb", 1, 1 << 20, "corpus text held in memory at once")
          .without_effect_on_numbers(),
  };
  return rows;
}

template <>
const BoundSettings<MergeSettings>& bound_settings<MergeSettings>() {
  using S = MergeSettings;
  static const BoundSettings<S> rows = {
      choice(at(&S::method), "merge.method",
             "how the MoE is built (docs/upcycling.md): `btx` (N trained experts' FFNs, other weights averaged), "
             "`naive` (N copies of `base_model`), `noise` (copies, `drop_ratio` of each expert's FFN neurons + "
             "normal(0, `noise_std`)), `drop_upcycling` (copies, `drop_ratio` of each expert's FFN neurons re-drawn), "
             "`btx_drop_upcycling` (trained experts, then as drop_upcycling)")
          .laid_out_by_run(),
      list(at(&S::experts), "merge.experts", T::kStrings,
           "`btx`, `btx_drop_upcycling`: the N >= 2 trained dense experts, in expert order")
          .laid_out_by_run(),
      path(at(&S::base_model), "merge.base_model", Need::kOptional,
           "`naive`, `noise`, `drop_upcycling`: the dense model to copy; `btx`, `btx_drop_upcycling` with "
           "`shared_expert: base`: the dense model the experts were trained from")
          .laid_out_by_run(),
      integer(at(&S::num_experts), "merge.num_experts", 0, 1 << 16,
              "`naive`, `noise`, `drop_upcycling`: the number of copies (>= 2); with trained experts, 0 or their count")
          .laid_out_by_run(),
      path(at(&S::output), "merge.output", Need::kRequired, "the MoE directory to write")
          .if_missing("give the MoE directory to write (merge.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice(at(&S::moe_kind), "merge.moe_kind",
             "`sparse`: a Mixtral (top-k routing); `soft`: svmoe's causal Soft MoE (every expert on a slot mixed "
             "from the prefix, outputs mixed per position; its own format, model_type `svmoe_soft_moe`); "
             "`cartesian`: CartesianMoE (two routed sub-layers a layer, A with each expert's first half of FFN "
             "neurons and B with the second, a residual and norm between; model_type `svmoe_cartesian_moe`); "
             "docs/moe.md"),
      choice(at(&S::shared_expert), "merge.shared_expert",
             "`none`: a Mixtral; `base` or `mean`: a Qwen2-MoE (`qwen2_moe`, transformers' class) whose layers add an "
             "always-on shared expert behind a sigmoid gate, initialised from the base model's FFN or the mean of the "
             "merged models' FFNs, the gate at zero (docs/moe.md); with `moe_kind: cartesian`, each sub-layer's "
             "ungated shared expert, from that FFN's half; not with `soft`"),
      integer(at(&S::num_experts_per_tok), "merge.num_experts_per_tok", 1, 4096,
              "top-k of the routing (at most the number of experts; `cartesian`: in each sub-layer; not `soft`)"),
      choice(at(&S::router_init), "merge.router_init",
             "the routers' distribution: `normal` (0, std), or `uniform` centred on its mean with that std "
             "(Drop-Upcycling's `torch_rand_002` at std 0.02)"),
      number(at(&S::router_init_std), "merge.router_init_std", 0.0, 1e6,
             "the routers' standard deviation; 0: the dense model's `initializer_range`"),
      number(at(&S::drop_ratio), "merge.drop_ratio", 0.0, 1.0,
             "r: the fraction of each expert's FFN intermediate neurons re-drawn (`drop_upcycling`, "
             "`btx_drop_upcycling`) or perturbed (`noise`)"),
      number(at(&S::noise_std), "merge.noise_std", 0.0, 1e6, "`noise`: the perturbation's standard deviation"),
      integer(at(&S::max_shard_mb), "merge.max_shard_mb", 1, 1 << 30, "safetensors shard size")
          .without_effect_on_numbers(),
  };
  return rows;
}

template <>
const BoundSettings<TrainSettings>& bound_settings<TrainSettings>() {
  using S = TrainSettings;
  static const BoundSettings<S> rows = {
      integer(at(&S::steps), "train.steps", 1, kBig, "optimizer steps"),
      integer(at(&S::micro_batch), "train.micro_batch", 1, 1 << 20, "sequences per forward/backward, per process"),
      integer(at(&S::grad_accum), "train.grad_accum", 1, 1 << 20, "micro-batches per optimizer step"),
      integer(at(&S::sequence_length), "train.sequence_length", 1, 1 << 24,
              "tokens per sequence (windows of length + 1 from the shards)"),
      number(at(&S::learning_rate), "train.learning_rate", 0.0, 10.0, "peak learning rate"),
      number(at(&S::min_lr_ratio), "train.min_lr_ratio", 0.0, 1.0, "the schedule's floor, a fraction of the peak"),
      integer(at(&S::warmup_steps), "train.warmup_steps", 0, kBig, "linear warmup"),
      choice(at(&S::schedule), "train.schedule", "the learning rate after warmup"),
      number(at(&S::weight_decay), "train.weight_decay", 0.0, 10.0, "AdamW decay (not on norms and biases)"),
      number(at(&S::beta1), "train.beta1", 0.0, 0.999999, "AdamW's beta1"),
      number(at(&S::beta2), "train.beta2", 0.0, 0.999999, "AdamW's beta2"),
      number(at(&S::eps), "train.eps", 0.0, 1.0, "AdamW's epsilon"),
      number(at(&S::grad_clip), "train.grad_clip", 0.0, 1e9, "global gradient norm; 0: none"),
      integer(at(&S::log_every), "train.log_every", 1, kBig, "steps between metrics lines").without_effect_on_numbers(),
      integer(at(&S::eval_every), "train.eval_every", 0, kBig, "steps between validations; 0: at the end only"),
      integer(at(&S::eval_batches), "train.eval_batches", 1, kBig, "micro-batches per validation"),
      integer(at(&S::save_every), "train.save_every", 0, kBig, "steps between checkpoints; 0: at the end only")
          .without_effect_on_numbers(),
      integer(at(&S::keep_last), "train.keep_last", 1, 1 << 20, "checkpoints kept").without_effect_on_numbers(),
      choice(at(&S::precision), "train.precision",
             "`auto` (float32 on the CPU, `bf16_mixed` on CUDA), `float32`, `bf16_mixed` (bf16 parameters and "
             "compute, float32 master weights and moments), `bf16` (no master weights)"),
      integer(at(&S::zero_stage), "train.zero_stage", 0, 1,
              "`1`: ZeRO stage 1, the optimizer state (moments, master weights) sharded over the data-parallel "
              "ranks (docs/training.md); `0`: every rank holds all of it")
          .without_effect_on_numbers(),
      boolean(at(&S::activation_checkpointing), "train.activation_checkpointing",
              "keep only each block's input for the backward pass and recompute the block there (about a third "
              "more compute, much less activation memory; the same gradients)")
          .without_effect_on_numbers(),
  };
  return rows;
}

template <>
const BoundSettings<TrainExpertsSettings>& bound_settings<TrainExpertsSettings>() {
  using S = TrainExpertsSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::base_model), "train_experts.base_model", Need::kRequired,
           "the dense base model, a Hugging Face directory")
          .if_missing("give the dense base model (a Hugging Face directory; train_experts.base_model or --base-model)")
          .laid_out_by_run(),
      choice(at(&S::init), "train_experts.init", "as `finetune.init`"),
      path(at(&S::dataset), "train_experts.dataset", Need::kRequired, "a directory written by svmoe prepare")
          .if_missing("give a dataset directory written by svmoe prepare")
          .laid_out_by_run(),
      path(at(&S::output), "train_experts.output", Need::kRequired, "writes `expert_N/` and `runs/expert_N/`")
          .if_missing("give the experts directory (train_experts.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice(at(&S::coverage), "train_experts.coverage",
             "what each expert is trained on: `subdomains` (expert n on subdomain n, the paper's) or `pairs` (expert "
             "k on the k-th pair of subdomains {i, j}, i < j: Monju's experts for the BTM ensemble; docs/eval.md)")
          .laid_out_by_run(),
      list(at(&S::experts), "train_experts.experts", T::kIntegers,
           "the experts to train (their numbers, as `coverage` counts them); empty: all")
          .laid_out_by_run(),
      train_overrides<S>("train_experts.train"),
  };
  return rows;
}

template <>
const BoundSettings<FinetuneSettings>& bound_settings<FinetuneSettings>() {
  using S = FinetuneSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::model), "finetune.model", Need::kRequired, "the model to train: a Hugging Face directory")
          .if_missing("give the model to train (a Hugging Face directory; finetune.model or --model)")
          .laid_out_by_run(),
      choice(at(&S::init), "finetune.init",
             "`pretrained` (its weights) or `random` (its config.json with the HF initialiser)")
          .laid_out_by_run(),
      path(at(&S::dataset), "finetune.dataset", Need::kRequired, "a directory written by svmoe prepare")
          .if_missing("give a dataset directory written by svmoe prepare (finetune.dataset)")
          .laid_out_by_run(),
      list(at(&S::subdomains), "finetune.subdomains", T::kIntegers, "the subdomains to train on; empty: all"),
      list(at(&S::subdomain_weights), "finetune.subdomain_weights", T::kNumbers,
           "sampling weights, one per entry of `subdomains`; empty: every window equally likely (a mix in "
           "proportion to size)"),
      path(at(&S::output), "finetune.output", Need::kRequired, "the run directory")
          .if_missing("give the run directory (finetune.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice(at(&S::load_balancing, &LoadBalancingSettings::method), "finetune.load_balancing.method",
             "MoE models: `none`, `switch` (the Switch/Mixtral LB loss), `aux_free` (Wang et al.'s bias)")
          .laid_out_by_run(),
      number(at(&S::load_balancing, &LoadBalancingSettings::alpha), "finetune.load_balancing.alpha", 0.0, 1e6,
             "alpha, the LB coefficient of `switch` (SPEC.md §4); a model fine-tuned with `switch` records it in "
             "its config.json as `router_aux_loss_coef`"),
      choice(at(&S::load_balancing, &LoadBalancingSettings::pooling), "finetune.load_balancing.pooling",
             "`pooled` (all layers' routing together: transformers' value) or `per_layer` (each layer's own loss, "
             "as the Switch Transformer adds one per layer; averaged over layers)"),
      number(at(&S::load_balancing, &LoadBalancingSettings::aux_free_rate), "finetune.load_balancing.aux_free_rate",
             0.0, 1e6, "`aux_free`: the bias step per optimizer step"),
      train_overrides<S>("finetune.train"),
  };
  return rows;
}

template <>
const BoundSettings<TrainRouterSettings>& bound_settings<TrainRouterSettings>() {
  using S = TrainRouterSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::model), "train_router.model", Need::kRequired, "the merged MoE (svmoe merge's output)")
          .if_missing("give the merged MoE (svmoe merge's output; train_router.model or --model)")
          .laid_out_by_run(),
      path(at(&S::dataset), "train_router.dataset", Need::kRequired,
           "the dataset the experts were trained on (its `tfidf.safetensors`)")
          .if_missing("give the dataset svmoe prepare wrote (its TF-IDF targets; train_router.dataset)")
          .laid_out_by_run(),
      path(at(&S::output), "train_router.output", Need::kRequired,
           "the run directory; the trained MoE in `OUTPUT/final/`")
          .if_missing("give the run directory (train_router.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice(at(&S::missing_target), "train_router.missing_target",
             "tokens without a TF-IDF target: `mask` (left out of the loss) or `uniform` (target 1/N)"),
      choice(at(&S::loss), "train_router.loss",
             "the two readings of the paper's l_CE(softmax(RL), TFIDF): `soft_cross_entropy` (-sum T log softmax(RL), "
             "minimised at the teacher) or `softmax_then_cross_entropy` (PyTorch's cross_entropy applied to the "
             "probabilities: a second softmax; docs/training.md)")
          .hashed_only_away_from_default(),
      choice(at(&S::teacher, &TeacherSettings::split), "train_router.teacher_split",
             "the splits whose token counts make the TF-IDF teacher: `train` (the test split stays unseen) or `all` "
             "(the whole subdomain d_n, as the paper computes it before splitting)")
          .hashed_only_away_from_default(),
      choice(at(&S::teacher, &TeacherSettings::tf), "train_router.teacher_tf",
             "the teacher's term frequency: `raw` (count, scikit-learn's default) or `sublinear` (1 + ln count)")
          .hashed_only_away_from_default(),
      boolean(at(&S::detach_router_inputs), "train_router.detach_router_inputs",
              "`false`: the paper's loss under autograd (router l also learns from later layers' terms through "
              "the residual stream; the backward pass runs through every frozen block); `true`: each router "
              "learns from its own layer's term only (no graph through the blocks: less memory and time; "
              "docs/training.md)"),
      train_overrides<S>("train_router.train"),
  };
  return rows;
}

template <>
const BoundSettings<EvalSettings>& bound_settings<EvalSettings>() {
  using S = EvalSettings;
  static const BoundSettings<S> rows = {
      unbound_list<S>("eval.models", T::kRecords, Json::array(),
                      "a list of `{name: ..., path: DIR, lb: yes | no | -}` (lb fills the tables' LB column; required)")
          .laid_out_by_run(),
      path(at(&S::dataset), "eval.dataset", Need::kRequired, "the prepared dataset (its splits and TF-IDF targets)")
          .if_missing("give the dataset svmoe prepare wrote (eval.dataset)")
          .laid_out_by_run(),
      list(at(&S::splits), "eval.splits", T::kStrings, "the splits to score", enum_names<DataSplit>()),
      path(at(&S::output), "eval.output", Need::kRequired, "where the tables and raw numbers go")
          .if_missing("give the directory for the tables (eval.output or --output)")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      integer(at(&S::context_length), "eval.context_length", 0, 1 << 24,
              "tokens per scoring window; 0: the model's `max_position_embeddings`"),
      integer(at(&S::max_documents), "eval.max_documents", 0, kBig, "per subdomain and split; 0: all"),
      list(at(&S::btm, &BtmSettings::experts), "eval.btm.experts", T::kStrings,
           "the BTM ensemble baseline's dense experts, in the order `coverage` counts them; empty: no BTM row")
          .laid_out_by_run(),
      choice(at(&S::btm, &BtmSettings::coverage), "eval.btm.coverage",
             "what each listed expert was trained on, as `train_experts.coverage`")
          .laid_out_by_run(),
      choice(at(&S::btm, &BtmSettings::weighting), "eval.btm.weighting",
             "the experts' weights per document: `tfidf` (cosine similarity to their subdomains' TF-IDF rows) or "
             "`distance` (Monju / c-BTM: the distances to the other subdomains' centres; docs/eval.md)"),
      text(at(&S::btm, &BtmSettings::name), "eval.btm.name", "its name in the tables"),
      path(at(&S::fewshot, &FewShotSettings::items), "eval.fewshot.items", Need::kOptional,
           "JSONL true/false items; unset: no few-shot evaluation"),
      path(at(&S::fewshot, &FewShotSettings::shot_file), "eval.fewshot.shot_file", Need::kOptional,
           "JSONL solved shots (required with items)"),
      integer(at(&S::fewshot, &FewShotSettings::k), "eval.fewshot.k", 0, 1000, "shots per prompt"),
      text(at(&S::fewshot, &FewShotSettings::prompt), "eval.fewshot.prompt",
           "one item's text; `{statement}` is replaced"),
      list(at(&S::fewshot, &FewShotSettings::answers), "eval.fewshot.answers", T::kStrings,
           "the answer strings for false (0) and true (1)"),
      text(at(&S::fewshot, &FewShotSettings::separator), "eval.fewshot.separator", "between shots and before the item"),
      choice(at(&S::fewshot, &FewShotSettings::draw), "eval.fewshot.draw",
             "`per_item` (k shots drawn for each item with the seed and its index) or `once` (one set of k shots, "
             "drawn with the seed, for every item, as the paper's \"5 random 2019 items\" reads)")
          .hashed_only_away_from_default(),
  };
  return rows;
}

template <>
const BoundSettings<ReportSettings>& bound_settings<ReportSettings>() {
  using S = ReportSettings;
  static const BoundSettings<S> rows = {
      unbound_list<S>("report.runs", T::kRecords, Json::array(),
                      "loss curves: a list of `{name: ..., path: RUN_DIR}` (directories holding metrics.jsonl)")
          .laid_out_by_run(),
      text(at(&S::text), "report.text", "a text whose routing to show for each MoE model (\"\": no routed-text view)"),
      integer(at(&S::layer), "report.layer", 0, 1 << 20,
              "the router whose routing the text view shows: the layer (a CartesianMoE's layer l has routers 2l and 2l "
              "+ 1)"),
      path(at(&S::output), "report.output", Need::kOptional, "the HTML file; unset: `EVAL_OUTPUT/report.html`")
          .without_effect_on_numbers()
          .laid_out_by_run(),
  };
  return rows;
}

template <>
const BoundSettings<RunSettings>& bound_settings<RunSettings>() {
  using S = RunSettings;
  static const BoundSettings<S> rows = {
      path(at(&S::dir), "run.dir", Need::kRequired,
           "the experiment directory: every step's output and the markers (`DIR/pipeline/`)")
          .if_missing("give the experiment directory that holds every stage's output (run.dir)"),
      path(at(&S::base_model), "run.base_model", Need::kRequired,
           "the dense base model, a local Hugging Face directory; with `pretrain_base`, a directory whose "
           "`config.json` gives the architecture to pretrain")
          .if_missing("give the dense base model, a Hugging Face directory (run.base_model); with "
                      "run.pretrain_base.enabled, a directory whose config.json describes the model to pretrain"),
      boolean(at(&S::pretrain_base), "run.pretrain_base.enabled",
              "pretrain the base model from scratch on all subdomains first (the quickstart; the paper starts "
              "from a pretrained model)"),
      train_overrides<S>("run.pretrain_base.train"),
      list(at(&S::models), "run.models", T::kStrings,
           "the stage-4 models to train and evaluate: `dense` or `METHOD[_svmoe[_LOSS]][_lb]` (docs/pipeline.md); by "
           "default the paper's five",
           run_model_names()),
      choice(at(&S::lb_method), "run.lb_method", {"switch", "aux_free"},
             "the load-balancing method of the `_lb` models"),
      boolean(at(&S::btm_ensemble), "run.btm_ensemble", "also evaluate the BTM ensemble of dense experts (`eval.btm`)"),
      choice(at(&S::btm_coverage), "run.btm_coverage",
             "the ensemble's experts: `subdomains` (stage 1's experts) or `pairs` (a `pair_experts` step trains one "
             "per pair of subdomains, as Monju does)"),
  };
  return rows;
}

std::vector<std::string> unread_setting_keys(const MergeSettings& settings) {
  std::vector<std::string> keys;
  for (const MergeParameter parameter : all_merge_parameters()) {
    if (!merge_method_spec(settings.method).reads(parameter)) keys.emplace_back(merge_parameter_key(parameter));
  }
  return keys;
}

std::vector<std::string> unread_setting_keys(const FinetuneSettings& settings) {
  std::vector<std::string> keys;
  if (settings.load_balancing.method != LoadBalancingMethod::kNone) return keys;
  for (const auto& row : bound_settings<FinetuneSettings>()) {
    const std::string& key = row.spec.key;
    if (starts_with(key, "finetune.load_balancing.") && key != "finetune.load_balancing.method") keys.push_back(key);
  }
  return keys;
}

std::vector<std::string> unread_setting_keys(const EvalSettings& settings) {
  if (!settings.btm.experts.empty()) return {};
  return {"eval.btm.weighting"};
}

std::vector<SettingSpec> every_setting_row() {
  std::vector<SettingSpec> table;
  for_each_settings_struct([&](auto* tag) {
    for (const auto& row : bound_settings<std::remove_pointer_t<decltype(tag)>>()) table.push_back(row.spec);
  });
  return table;
}

}  // namespace svmoe
