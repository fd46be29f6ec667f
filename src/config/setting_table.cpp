#include "svmoe/config/setting_table.h"

#include <algorithm>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include "svmoe/config/settings.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

constexpr std::int64_t kBig = std::int64_t{1} << 40;
constexpr double kUnbounded = std::numeric_limits<double>::max();

SettingSpec row(std::string key, SettingType type, Json value) {
  SettingSpec s;
  s.key = std::move(key);
  s.type = type;
  s.default_value = std::move(value);
  return s;
}

SettingSpec integer(std::string key, std::int64_t value, std::int64_t min, std::int64_t max, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kInteger, value);
  s.minimum = min;
  s.maximum = max;
  s.help = std::move(help);
  return s;
}

SettingSpec number(std::string key, double value, double min, double max, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kNumber, value);
  s.minimum = min;
  s.maximum = max;
  s.help = std::move(help);
  return s;
}

SettingSpec boolean(std::string key, bool value, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kBoolean, value);
  s.help = std::move(help);
  return s;
}

SettingSpec text(std::string key, std::string value, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kString, std::move(value));
  s.help = std::move(help);
  return s;
}

SettingSpec choice(std::string key, std::string value, std::vector<std::string> choices, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kChoice, std::move(value));
  s.choices = std::move(choices);
  s.help = std::move(help);
  return s;
}

template <typename E>
SettingSpec choice(std::string key, E value, std::string help) {
  return choice(std::move(key), enum_name(value), enum_names<E>(), std::move(help));
}

enum class Need { kRequired, kOptional };

SettingSpec path(std::string key, Need need, std::string help) {
  SettingSpec s = row(std::move(key), SettingType::kPath, nullptr);
  s.required = need == Need::kRequired;
  s.help = std::move(help);
  return s;
}

SettingSpec list(std::string key, SettingType type, Json value, std::string help,
                 std::vector<std::string> choices = {}) {
  SettingSpec s = row(std::move(key), type, std::move(value));
  s.choices = std::move(choices);
  s.help = std::move(help);
  return s;
}

SettingSpec train_overrides(std::string key) {
  SettingSpec s = row(std::move(key), SettingType::kTrainOverrides, nullptr);
  s.help = "this stage's own `train` keys (see `train`)";
  return s;
}

std::vector<SettingSpec> make_setting_table() {
  const RuntimeSettings runtime;
  const ForwardSettings forward;
  const PrepareSettings prepare;
  const TokenizerTrainSettings tokenizer;
  const MergeSettings merge;
  const TrainSettings train;
  const FinetuneSettings finetune;
  const TrainExpertsSettings experts;
  const TrainRouterSettings router;
  const EvalSettings eval;
  const GenerateSettings generate;
  const ServeSettings serve;
  const ReportSettings report;
  const RunSettings run;
  Json models = Json::array();
  for (const RunModel& m : run.models) models.push_back(run_model_name(m));
  Json splits = Json::array();
  for (const DataSplit split : eval.splits) splits.push_back(enum_name(split));
  using T = SettingType;
  return {
      text("runtime.device", runtime.device,
           "`auto` (CUDA if LibTorch has it and a GPU is present, else CPU), `cpu`, `cuda`, `cuda:N`")
          .without_effect_on_numbers(),
      choice("runtime.log_level", runtime.log_level, {"trace", "debug", "info", "warn", "error", "off"},
             "what the log shows")
          .without_effect_on_numbers(),
      integer(
          "runtime.threads", runtime.threads, 0, 4096,
          "CPU intra-op threads; 0 = every CPU this process may use (its affinity: Slurm's --cpus-per-task, taskset)")
          .without_effect_on_numbers(),
      integer("runtime.seed", static_cast<std::int64_t>(runtime.seed), 0, std::numeric_limits<std::int64_t>::max(),
              "random seed"),
      integer("runtime.distributed_timeout_s", runtime.distributed_timeout_s, 1, 7 * 24 * 3600,
              "data parallel: how long ranks wait for each other at the rendezvous and in collectives")
          .without_effect_on_numbers(),
      choice("runtime.expert_path", runtime.expert_path,
             "how MoE experts run (training, eval, forward): `grouped` (one grouped product per projection; "
             "`at::_grouped_mm` where LibTorch has it), `loop` (one expert at a time), `auto` (grouped where that "
             "kernel applies, else loop); both give the same result (docs/moe.md)")
          .without_effect_on_numbers(),
      boolean("runtime.tensorboard", runtime.tensorboard,
              "training runs also write their metrics as TensorBoard event files beside metrics.jsonl "
              "(`tensorboard --logdir EXPERIMENT_DIR`; docs/training.md)")
          .without_effect_on_numbers(),

      path("forward.model", Need::kRequired, "Hugging Face checkpoint directory"),
      path("forward.input", Need::kRequired,
           "safetensors file with int64 `input_ids` [B, T] (a 1-D tensor is one sequence)"),
      path("forward.output", Need::kOptional,
           "safetensors file to write: float32 `logits` [B, T, V] (+ `router_logits.{l}` for MoE)"),
      choice("forward.dtype", forward.dtype, "compute dtype; `auto`: the checkpoint's"),
      path("forward.compare", Need::kOptional,
           "safetensors file with expected outputs; exit code 7 when a difference exceeds `atol`"),
      number("forward.atol", forward.atol, 0.0, kUnbounded, "tolerance for `compare`"),

      path("generate.model", Need::kRequired, "Hugging Face checkpoint directory (its tokenizer beside it)"),
      list("generate.prompts", T::kStrings, Json::array(), "prompts (`--prompt`, repeatable)"),
      path("generate.prompts_file", Need::kOptional,
           "more prompts: a `.jsonl` file with a `prompt` string on each line, or a text file with one prompt a "
           "line (empty lines skipped)"),
      path("generate.output", Need::kOptional,
           "JSONL file to write: prompt, completion, token counts and finish reason (and routing) per prompt"),
      integer("generate.max_new_tokens", generate.max_new_tokens, 1, 1 << 20, "tokens to generate at most"),
      number("generate.temperature", generate.temperature, 0.0, 100.0,
             "sampling temperature; 0: greedy (the most likely token each step)"),
      integer("generate.top_k", generate.top_k, 0, 1 << 30, "sample from the k most likely tokens; 0: all"),
      number("generate.top_p", generate.top_p, 0.0, 1.0,
             "sample from the smallest set of most likely tokens whose probability reaches p (nucleus); 1: all"),
      number("generate.repetition_penalty", generate.repetition_penalty, 0.0, 100.0,
             "transformers' repetition penalty (logits of tokens already in the text divided by it if positive, "
             "multiplied if negative); 1: none"),
      list("generate.stop", T::kStrings, Json::array(),
           "stop strings (`--stop`, repeatable): the completion ends before the first one"),
      integer("generate.batch_size", generate.batch_size, 1, 4096,
              "prompts generated together (left-padded to the longest)"),
      boolean("generate.kv_cache", generate.kv_cache,
              "keep each layer's keys and values between steps; false recomputes the whole sequence every step "
              "(same tokens, for checks and speed comparisons)"),
      boolean("generate.routing", generate.routing,
              "print (and write to `output`) the experts each generated token went to, per layer"),
      choice("generate.dtype", generate.dtype, "compute dtype; `auto`: the checkpoint's"),

      path("serve.model", Need::kRequired, "Hugging Face checkpoint directory to serve (its tokenizer beside it)"),
      text("serve.model_name", serve.model_name,
           "the model id clients name in requests and /v1/models lists; empty: the model directory's name"),
      text("serve.host", serve.host,
           "address to listen on: 127.0.0.1 (this machine only); 0.0.0.0 to serve other machines (set an API key)"),
      integer("serve.port", serve.port, 0, 65535, "TCP port; 0: any free port (the log says which)"),
      text("serve.api_key", serve.api_key,
           "key clients must send as `Authorization: Bearer KEY`; empty: the SVMOE_API_KEY environment variable's, "
           "else none"),
      integer("serve.max_batch_size", serve.max_batch_size, 1, 4096,
              "sequences (prompts x n) generated together; requests that arrive meanwhile wait for the next batch"),
      integer("serve.max_queued", serve.max_queued, 1, 1 << 20,
              "sequences waiting for the model before new requests are refused (503)"),
      integer("serve.max_request_bytes", serve.max_request_bytes, 1024, std::int64_t{1} << 30,
              "largest request body accepted (413 beyond it)"),
      integer("serve.max_prompt_tokens", serve.max_prompt_tokens, 0, 1 << 24,
              "longest prompt accepted, in tokens; 0: the model's max_position_embeddings"),
      integer("serve.max_tokens", serve.max_tokens, 1, 1 << 20, "the largest `max_tokens` a request may ask for"),
      integer("serve.default_max_tokens", serve.default_max_tokens, 1, 1 << 20,
              "`max_tokens` of a request that gives none (OpenAI's default, 16)"),
      integer("serve.max_logprobs", serve.max_logprobs, 0, 1000, "the largest `logprobs` a request may ask for"),
      integer("serve.http_threads", serve.http_threads, 1, 4096,
              "connections served at once (each waits on the model thread; more queue in the kernel)"),
      boolean("serve.kv_cache", serve.kv_cache,
              "keep keys and values between generation steps (false recomputes every step; same tokens)"),
      choice("serve.dtype", serve.dtype, "compute dtype; `auto`: the checkpoint's"),

      list("prepare.corpus", T::kStrings, Json::array(),
           "JSONL files (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`; the compression read from the bytes) or directories of "
           "them; a string or a list (required)"),
      text("prepare.text_field", prepare.text_field,
           "the JSON field of each line that holds the text: a top-level key, or a JSON pointer such as `/meta/text` "
           "for a nested one"),
      text("prepare.category_field", prepare.category_field,
           "the JSON field of each line that holds the category: a top-level key, or a JSON pointer such as "
           "`/meta/category`"),
      boolean("prepare.skip_bad_lines", prepare.skip_bad_lines,
              "skip and count malformed lines instead of stopping at the first"),
      path("prepare.output", Need::kRequired, "the dataset directory to write")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      path("prepare.tokenizer", Need::kOptional,
           "model directory, `tokenizer.json` or `tokenizer.model`; required unless `tokenizer_train.enabled`"),
      boolean("prepare.tokenizer_train.enabled", tokenizer.enabled,
              "train a SentencePiece tokenizer on the corpus instead"),
      integer("prepare.tokenizer_train.vocab_size", tokenizer.vocab_size, 100, 1 << 22, "its vocabulary size"),
      choice("prepare.tokenizer_train.model_type", tokenizer.model_type, "SentencePiece's model"),
      number("prepare.tokenizer_train.character_coverage", tokenizer.character_coverage, 0.5, 1.0,
             "sentencepiece's character coverage"),
      integer("prepare.tokenizer_train.input_sentence_size", tokenizer.input_sentence_size, 1, kBig,
              "sentences sampled for training"),
      integer("prepare.num_subdomains", prepare.num_subdomains, 1, 4096, "N, the number of subdomains (experts)"),
      list("prepare.categories", T::kStrings, Json::array(),
           "if not empty, the categories to keep: documents of others are skipped and counted per category in the "
           "manifest (and warned about); a listed category without documents is an error"),
      list("prepare.pinned_categories", T::kStrings, Json::array(),
           "categories that are subdomains of their own (0..P-1, in this order)"),
      list("prepare.subdomain_of", T::kMapping, nullptr,
           "`{category: subdomain ID}` with IDs 1..N as the paper's Table 4 numbers them: the subdomains given, "
           "every category named once, instead of clustering (`pinned_categories` then stays empty); unset: "
           "clustering")
          .hashed_only_away_from_default(),
      integer("prepare.neighbors", prepare.neighbors, 0, 1 << 20,
              "k of the clustering's nearest-neighbour graph; 0: round(sqrt(M)) + 1"),
      choice("prepare.cluster_sizes", prepare.cluster_sizes,
             "how the clustering balances subdomain sizes: `strict` (k-means labels, then moves until sizes differ "
             "by at most `size_tolerance`) or `equity` (the cited implementation: \"discretize\" labels, sizes kept "
             "within `equity_fraction` bounds; docs/prepare.md)"),
      integer("prepare.size_tolerance", prepare.size_tolerance, 1, 1 << 20,
              "`strict`: largest allowed difference in categories between subdomains"),
      number("prepare.equity_fraction", prepare.equity_fraction, 0.0, 1.0,
             "`equity`: sizes are pushed into [min ideal x e, max ideal x (2 - e)]; 1 asks for equal sizes, small "
             "values accept natural clusters; must be > 0"),
      number("prepare.split.train", prepare.train_fraction, 0.0, 1.0,
             "document fraction per subdomain for training (the three sum to 1)"),
      number("prepare.split.valid", prepare.valid_fraction, 0.0, 1.0, "document fraction for validation"),
      number("prepare.split.test", prepare.test_fraction, 0.0, 1.0, "document fraction for test"),
      boolean("prepare.add_bos", prepare.add_bos, "put BOS before each document in the shards"),
      boolean("prepare.add_eos", prepare.add_eos, "put EOS after each document in the shards"),
      integer("prepare.threads", prepare.threads, 0, 4096,
              "tokenisation threads; 0: every CPU this process may use (its affinity)")
          .without_effect_on_numbers(),
      integer("prepare.buffer_mb", prepare.buffer_mb, 1, 1 << 20, "corpus text held in memory at once")
          .without_effect_on_numbers(),

      choice("merge.method", merge.method,
             "how the MoE is built (docs/upcycling.md): `btx` (N trained experts' FFNs, other weights averaged), "
             "`naive` (N copies of `base_model`), `noise` (copies, `drop_ratio` of each expert's FFN neurons + "
             "normal(0, `noise_std`)), `drop_upcycling` (copies, `drop_ratio` of each expert's FFN neurons re-drawn), "
             "`btx_drop_upcycling` (trained experts, then as drop_upcycling)")
          .laid_out_by_run(),
      list("merge.experts", T::kStrings, Json::array(),
           "`btx`, `btx_drop_upcycling`: the N >= 2 trained dense experts, in expert order")
          .laid_out_by_run(),
      path("merge.base_model", Need::kOptional,
           "`naive`, `noise`, `drop_upcycling`: the dense model to copy; `btx`, `btx_drop_upcycling` with "
           "`shared_expert: base`: the dense model the experts were trained from")
          .laid_out_by_run(),
      integer("merge.num_experts", merge.num_experts, 0, 1 << 16,
              "`naive`, `noise`, `drop_upcycling`: the number of copies (>= 2); with trained experts, 0 or their count")
          .laid_out_by_run(),
      path("merge.output", Need::kRequired, "the MoE directory to write").without_effect_on_numbers().laid_out_by_run(),
      choice("merge.moe_kind", merge.moe_kind,
             "`sparse`: a Mixtral (top-k routing); `soft`: svmoe's causal Soft MoE (every expert on a slot mixed "
             "from the prefix, outputs mixed per position; its own format, model_type `svmoe_soft_moe`); "
             "`cartesian`: CartesianMoE (two routed sub-layers a layer, A with each expert's first half of FFN "
             "neurons and B with the second, a residual and norm between; model_type `svmoe_cartesian_moe`); "
             "docs/moe.md"),
      choice("merge.shared_expert", merge.shared_expert,
             "`none`: a Mixtral; `base` or `mean`: a Qwen2-MoE (`qwen2_moe`, transformers' class) whose layers add an "
             "always-on shared expert behind a sigmoid gate, initialised from the base model's FFN or the mean of the "
             "merged models' FFNs, the gate at zero (docs/moe.md); with `moe_kind: cartesian`, each sub-layer's "
             "ungated shared expert, from that FFN's half; not with `soft`"),
      integer("merge.num_experts_per_tok", merge.num_experts_per_tok, 1, 4096,
              "top-k of the routing (at most the number of experts; `cartesian`: in each sub-layer; not `soft`)"),
      choice("merge.router_init", merge.router_init,
             "the routers' distribution: `normal` (0, std), or `uniform` centred on its mean with that std "
             "(Drop-Upcycling's `torch_rand_002` at std 0.02)"),
      number("merge.router_init_std", merge.router_init_std, 0.0, 1e6,
             "the routers' standard deviation; 0: the dense model's `initializer_range`"),
      number("merge.drop_ratio", merge.drop_ratio, 0.0, 1.0,
             "r: the fraction of each expert's FFN intermediate neurons re-drawn (`drop_upcycling`, "
             "`btx_drop_upcycling`) or perturbed (`noise`)"),
      number("merge.noise_std", merge.noise_std, 0.0, 1e6, "`noise`: the perturbation's standard deviation"),
      integer("merge.max_shard_mb", merge.max_shard_mb, 1, 1 << 30, "safetensors shard size")
          .without_effect_on_numbers(),

      integer("train.steps", train.steps, 1, kBig, "optimizer steps"),
      integer("train.micro_batch", train.micro_batch, 1, 1 << 20, "sequences per forward/backward, per process"),
      integer("train.grad_accum", train.grad_accum, 1, 1 << 20, "micro-batches per optimizer step"),
      integer("train.sequence_length", train.sequence_length, 1, 1 << 24,
              "tokens per sequence (windows of length + 1 from the shards)"),
      number("train.learning_rate", train.learning_rate, 0.0, 10.0, "peak learning rate"),
      number("train.min_lr_ratio", train.min_lr_ratio, 0.0, 1.0, "the schedule's floor, a fraction of the peak"),
      integer("train.warmup_steps", train.warmup_steps, 0, kBig, "linear warmup"),
      choice("train.schedule", train.schedule, "the learning rate after warmup"),
      number("train.weight_decay", train.weight_decay, 0.0, 10.0, "AdamW decay (not on norms and biases)"),
      number("train.beta1", train.beta1, 0.0, 0.999999, "AdamW's beta1"),
      number("train.beta2", train.beta2, 0.0, 0.999999, "AdamW's beta2"),
      number("train.eps", train.eps, 0.0, 1.0, "AdamW's epsilon"),
      number("train.grad_clip", train.grad_clip, 0.0, 1e9, "global gradient norm; 0: none"),
      integer("train.log_every", train.log_every, 1, kBig, "steps between metrics lines").without_effect_on_numbers(),
      integer("train.eval_every", train.eval_every, 0, kBig, "steps between validations; 0: at the end only"),
      integer("train.eval_batches", train.eval_batches, 1, kBig, "micro-batches per validation"),
      integer("train.save_every", train.save_every, 0, kBig, "steps between checkpoints; 0: at the end only")
          .without_effect_on_numbers(),
      integer("train.keep_last", train.keep_last, 1, 1 << 20, "checkpoints kept").without_effect_on_numbers(),
      choice("train.precision", train.precision,
             "`auto` (float32 on the CPU, `bf16_mixed` on CUDA), `float32`, `bf16_mixed` (bf16 parameters and "
             "compute, float32 master weights and moments), `bf16` (no master weights)"),
      integer("train.zero_stage", train.zero_stage, 0, 1,
              "`1`: ZeRO stage 1, the optimizer state (moments, master weights) sharded over the data-parallel "
              "ranks (docs/training.md); `0`: every rank holds all of it")
          .without_effect_on_numbers(),
      boolean("train.activation_checkpointing", train.activation_checkpointing,
              "keep only each block's input for the backward pass and recompute the block there (about a third "
              "more compute, much less activation memory; the same gradients)")
          .without_effect_on_numbers(),

      path("train_experts.base_model", Need::kRequired, "the dense base model, a Hugging Face directory")
          .laid_out_by_run(),
      choice("train_experts.init", experts.init, "as `finetune.init`"),
      path("train_experts.dataset", Need::kRequired, "a directory written by svmoe prepare").laid_out_by_run(),
      path("train_experts.output", Need::kRequired, "writes `expert_N/` and `runs/expert_N/`")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice("train_experts.coverage", experts.coverage,
             "what each expert is trained on: `subdomains` (expert n on subdomain n, the paper's) or `pairs` (expert "
             "k on the k-th pair of subdomains {i, j}, i < j: Monju's experts for the BTM ensemble; docs/eval.md)")
          .laid_out_by_run(),
      list("train_experts.experts", T::kIntegers, Json::array(),
           "the experts to train (their numbers, as `coverage` counts them); empty: all")
          .laid_out_by_run(),
      train_overrides("train_experts.train"),

      path("finetune.model", Need::kRequired, "the model to train: a Hugging Face directory").laid_out_by_run(),
      choice("finetune.init", finetune.init,
             "`pretrained` (its weights) or `random` (its config.json with the HF initialiser)")
          .laid_out_by_run(),
      path("finetune.dataset", Need::kRequired, "a directory written by svmoe prepare").laid_out_by_run(),
      list("finetune.subdomains", T::kIntegers, Json::array(), "the subdomains to train on; empty: all"),
      list("finetune.subdomain_weights", T::kNumbers, Json::array(),
           "sampling weights, one per entry of `subdomains`; empty: every window equally likely (a mix in "
           "proportion to size)"),
      path("finetune.output", Need::kRequired, "the run directory").without_effect_on_numbers().laid_out_by_run(),
      choice("finetune.load_balancing.method", finetune.load_balancing.method,
             "MoE models: `none`, `switch` (the Switch/Mixtral LB loss), `aux_free` (Wang et al.'s bias)")
          .laid_out_by_run(),
      number("finetune.load_balancing.alpha", finetune.load_balancing.alpha, 0.0, 1e6,
             "alpha, the LB coefficient of `switch` (SPEC.md §4); a model fine-tuned with `switch` records it in "
             "its config.json as `router_aux_loss_coef`"),
      choice("finetune.load_balancing.pooling", finetune.load_balancing.pooling,
             "`pooled` (all layers' routing together: transformers' value) or `per_layer` (each layer's own loss, "
             "as the Switch Transformer adds one per layer; averaged over layers)"),
      number("finetune.load_balancing.aux_free_rate", finetune.load_balancing.aux_free_rate, 0.0, 1e6,
             "`aux_free`: the bias step per optimizer step"),
      train_overrides("finetune.train"),

      path("train_router.model", Need::kRequired, "the merged MoE (svmoe merge's output)").laid_out_by_run(),
      path("train_router.dataset", Need::kRequired, "the dataset the experts were trained on (its `tfidf.safetensors`)")
          .laid_out_by_run(),
      path("train_router.output", Need::kRequired, "the run directory; the trained MoE in `OUTPUT/final/`")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      choice("train_router.missing_target", router.missing_target,
             "tokens without a TF-IDF target: `mask` (left out of the loss) or `uniform` (target 1/N)"),
      choice("train_router.loss", router.loss,
             "the two readings of the paper's l_CE(softmax(RL), TFIDF): `soft_cross_entropy` (-sum T log softmax(RL), "
             "minimised at the teacher) or `softmax_then_cross_entropy` (PyTorch's cross_entropy applied to the "
             "probabilities: a second softmax; docs/training.md)")
          .hashed_only_away_from_default(),
      choice("train_router.teacher_split", router.teacher.split,
             "the splits whose token counts make the TF-IDF teacher: `train` (the test split stays unseen) or `all` "
             "(the whole subdomain d_n, as the paper computes it before splitting)")
          .hashed_only_away_from_default(),
      choice("train_router.teacher_tf", router.teacher.tf,
             "the teacher's term frequency: `raw` (count, scikit-learn's default) or `sublinear` (1 + ln count)")
          .hashed_only_away_from_default(),
      boolean("train_router.detach_router_inputs", router.detach_router_inputs,
              "`false`: the paper's loss under autograd (router l also learns from later layers' terms through "
              "the residual stream; the backward pass runs through every frozen block); `true`: each router "
              "learns from its own layer's term only (no graph through the blocks: less memory and time; "
              "docs/training.md)"),
      train_overrides("train_router.train"),

      list("eval.models", T::kRecords, Json::array(),
           "a list of `{name: ..., path: DIR, lb: yes | no | -}` (lb fills the tables' LB column; required)")
          .laid_out_by_run(),
      path("eval.dataset", Need::kRequired, "the prepared dataset (its splits and TF-IDF targets)").laid_out_by_run(),
      list("eval.splits", T::kStrings, splits, "the splits to score", enum_names<DataSplit>()),
      path("eval.output", Need::kRequired, "where the tables and raw numbers go")
          .without_effect_on_numbers()
          .laid_out_by_run(),
      integer("eval.context_length", eval.context_length, 0, 1 << 24,
              "tokens per scoring window; 0: the model's `max_position_embeddings`"),
      integer("eval.max_documents", eval.max_documents, 0, kBig, "per subdomain and split; 0: all"),
      list("eval.btm.experts", T::kStrings, Json::array(),
           "the BTM ensemble baseline's dense experts, in the order `coverage` counts them; empty: no BTM row")
          .laid_out_by_run(),
      choice("eval.btm.coverage", eval.btm.coverage,
             "what each listed expert was trained on, as `train_experts.coverage`")
          .laid_out_by_run(),
      choice("eval.btm.weighting", eval.btm.weighting,
             "the experts' weights per document: `tfidf` (cosine similarity to their subdomains' TF-IDF rows) or "
             "`distance` (Monju / c-BTM: the distances to the other subdomains' centres; docs/eval.md)"),
      text("eval.btm.name", eval.btm.name, "its name in the tables"),
      path("eval.fewshot.items", Need::kOptional, "JSONL true/false items; unset: no few-shot evaluation"),
      path("eval.fewshot.shot_file", Need::kOptional, "JSONL solved shots (required with items)"),
      integer("eval.fewshot.k", eval.fewshot.k, 0, 1000, "shots per prompt"),
      text("eval.fewshot.prompt", eval.fewshot.prompt, "one item's text; `{statement}` is replaced"),
      list("eval.fewshot.answers", T::kStrings, eval.fewshot.answers, "the answer strings for false (0) and true (1)"),
      text("eval.fewshot.separator", eval.fewshot.separator, "between shots and before the item"),
      choice("eval.fewshot.draw", eval.fewshot.draw,
             "`per_item` (k shots drawn for each item with the seed and its index) or `once` (one set of k shots, "
             "drawn with the seed, for every item, as the paper's \"5 random 2019 items\" reads)")
          .hashed_only_away_from_default(),

      list("report.runs", T::kRecords, Json::array(),
           "loss curves: a list of `{name: ..., path: RUN_DIR}` (directories holding metrics.jsonl)")
          .laid_out_by_run(),
      text("report.text", report.text, "a text whose routing to show for each MoE model (\"\": no routed-text view)"),
      integer("report.layer", report.layer, 0, 1 << 20,
              "the router whose routing the text view shows: the layer (a CartesianMoE's layer l has routers 2l and 2l "
              "+ 1)"),
      path("report.output", Need::kOptional, "the HTML file; unset: `EVAL_OUTPUT/report.html`")
          .without_effect_on_numbers()
          .laid_out_by_run(),

      path("run.dir", Need::kRequired,
           "the experiment directory: every step's output and the markers (`DIR/pipeline/`)"),
      path("run.base_model", Need::kRequired,
           "the dense base model, a local Hugging Face directory; with `pretrain_base`, a directory whose "
           "`config.json` gives the architecture to pretrain"),
      boolean("run.pretrain_base.enabled", run.pretrain_base,
              "pretrain the base model from scratch on all subdomains first (the quickstart; the paper starts "
              "from a pretrained model)"),
      train_overrides("run.pretrain_base.train"),
      list("run.models", T::kStrings, models,
           "the stage-4 models to train and evaluate: `dense` or `METHOD[_svmoe[_LOSS]][_lb]` (docs/pipeline.md); by "
           "default the paper's five",
           run_model_names()),
      choice("run.lb_method", enum_name(run.lb_method), {"switch", "aux_free"},
             "the load-balancing method of the `_lb` models"),
      boolean("run.btm_ensemble", run.btm_ensemble, "also evaluate the BTM ensemble of dense experts (`eval.btm`)"),
      choice("run.btm_coverage", run.btm_coverage,
             "the ensemble's experts: `subdomains` (stage 1's experts) or `pairs` (a `pair_experts` step trains one "
             "per pair of subdomains, as Monju does)"),
  };
}

std::vector<SectionDoc> make_section_docs() {
  return {
      {"runtime", "every subcommand", ""},
      {"forward", "`svmoe forward`", "At least one of `output` and `compare` must be set."},
      {"generate", "`svmoe generate`, docs/generation.md",
       "Flags: `--model`, `--prompt` (repeatable), `--prompts-file`, `--output`, `--max-new-tokens`, "
       "`--temperature`, `--top-k`, `--top-p`, `--repetition-penalty`, `--stop` (repeatable), `--batch-size`, "
       "`--no-kv-cache`, `--routing`, `--dtype`. Sampling draws with `runtime.seed` + the prompt's index, so a "
       "prompt's text does not depend on the batch it is in."},
      {"serve", "`svmoe serve`, docs/serving.md",
       "Flags: `--model`, `--model-name`, `--host`, `--port`, `--api-key`, `--max-batch-size`, `--max-queued`, "
       "`--max-request-bytes`, `--max-prompt-tokens`, `--max-tokens`, `--max-logprobs`, `--http-threads`, "
       "`--no-kv-cache`, `--dtype`. A request without a `seed` samples with one the server draws; with a seed, "
       "sequence i of the request (prompt p, choice c: i = p n + c) samples with seed + i."},
      {"prepare", "`svmoe prepare`, docs/prepare.md",
       "Flags of `svmoe prepare`: `--corpus`, `--output`, `--tokenizer`, `--subdomains`."},
      {"merge", "`svmoe merge`",
       "Flags of `svmoe merge`: `--method`, `--experts`, `--base-model`, `--num-experts`, `--drop-ratio`, "
       "`--shared-expert`, `--output`, `--top-k`. docs/upcycling.md describes the methods and where svmoe follows or "
       "departs from their published "
       "code. The routers are seeded with `runtime.seed` "
       "(layer l's from seed + 1000003 l, so a router does not depend on write order). The MoE's config.json gets "
       "transformers' `router_aux_loss_coef` default (0.001); `svmoe finetune` with `load_balancing.method: switch` "
       "replaces it with `finetune.load_balancing.alpha`, the coefficient it trained with."},
      {"train", "every training stage",
       "`micro_batch` is per process: with data parallelism a step reads `micro_batch x grad_accum x world size` "
       "windows.\n\n"
       "**A stage's own training settings.** `train_experts`, `train_router`, `finetune` and `run.pretrain_base` "
       "each have a `train` subsection with the same keys, all null by default; a key set there replaces the "
       "`train` section's for that stage only, so one experiment file gives each stage its own steps and learning "
       "rate (`train_router: {train: {steps: 100, learning_rate: 1.0e-2}}`). Errors name the stage's key. Each "
       "stage's `--steps` flag sets `STAGE.train.steps`."},
      {"train_experts", "`svmoe train-experts`",
       "Flags: `--base-model`, `--dataset`, `--output`, `--expert N`, `--steps`."},
      {"finetune", "`svmoe finetune`", "Flags: `--model`, `--dataset`, `--output`, `--steps`."},
      {"train_router", "`svmoe train-router`", "Flags: `--model`, `--dataset`, `--output`, `--steps`."},
      {"eval", "`svmoe eval`, docs/eval.md",
       "Flags: `--dataset`, `--output`, `--split` (repeatable), `--max-documents`."},
      {"report", "`svmoe report`, docs/eval.md", "Flags: `--output`, `--text`."},
      {"run", "`svmoe run`, docs/pipeline.md", ""},
  };
}

std::string markdown_cell(std::string text) {
  std::string out;
  for (const char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// A string that Markdown would lose (empty, a leading space, a newline) is shown as JSON.
std::string literal(const Json& value) {
  if (!value.is_string()) return value.dump();
  const std::string& text = value.get<std::string>();
  const bool plain = !text.empty() && text.front() != ' ' && text.find('\n') == std::string::npos;
  return plain ? text : value.dump();
}

std::string default_cell(const SettingSpec& s) {
  if (s.type == SettingType::kTrainOverrides) return "nulls";
  if (s.default_value.is_null()) return s.required ? "required" : "none";
  if (!s.default_value.is_array()) return "`" + markdown_cell(literal(s.default_value)) + "`";
  std::vector<std::string> items;
  for (const auto& item : s.default_value) items.push_back(literal(item));
  return "`[" + markdown_cell(join(items, ", ")) + "]`";
}

std::string bound_text(const Json& bound) {
  if (bound.is_number_integer()) {
    const std::int64_t v = bound.get<std::int64_t>();
    if (v == std::numeric_limits<std::int64_t>::max()) return "2^63-1";
    if (v >= (std::int64_t{1} << 20) && (v & (v - 1)) == 0) {
      int power = 0;
      while ((std::int64_t{1} << power) != v) ++power;
      return "2^" + std::to_string(power);
    }
    return std::to_string(v);
  }
  return bound.dump();
}

std::string type_cell(const SettingSpec& s) {
  const auto quoted = [](const std::vector<std::string>& words) {
    std::vector<std::string> out;
    for (const auto& w : words) out.push_back("`" + w + "`");
    return join(out, ", ");
  };
  switch (s.type) {
    case SettingType::kString:
      return "string";
    case SettingType::kChoice:
      return "one of " + quoted(s.choices);
    case SettingType::kInteger:
      return "integer in [" + bound_text(s.minimum) + ", " + bound_text(s.maximum) + "]";
    case SettingType::kNumber:
      if (s.maximum.get<double>() >= kUnbounded) return "number >= " + bound_text(s.minimum);
      return "number in [" + bound_text(s.minimum) + ", " + bound_text(s.maximum) + "]";
    case SettingType::kBoolean:
      return "true/false";
    case SettingType::kPath:
      return "path";
    case SettingType::kStrings:
      return s.choices.empty() ? "list of strings" : "list of " + quoted(s.choices);
    case SettingType::kIntegers:
      return "list of integers";
    case SettingType::kNumbers:
      return "list of numbers";
    case SettingType::kRecords:
      return "list of mappings";
    case SettingType::kMapping:
      return "mapping";
    case SettingType::kTrainOverrides:
      return "section";
  }
  return "?";
}

}  // namespace

SettingSpec SettingSpec::hashed_only_away_from_default() const {
  SettingSpec copy = *this;
  copy.hashed_at_default = false;
  return copy;
}

SettingSpec SettingSpec::without_effect_on_numbers() const {
  SettingSpec copy = *this;
  copy.affects_numbers = false;
  return copy;
}

SettingSpec SettingSpec::laid_out_by_run() const {
  SettingSpec copy = *this;
  copy.set_by_run = true;
  return copy;
}

const std::vector<SettingSpec>& setting_table() {
  static const std::vector<SettingSpec> table = make_setting_table();
  return table;
}

const std::vector<SectionDoc>& section_docs() {
  static const std::vector<SectionDoc> docs = make_section_docs();
  return docs;
}

const SettingSpec& setting_spec(const std::string& key) {
  // A stage's own `train` key (STAGE.train.KEY) is the row of train.KEY.
  const auto own = key.find(".train.");
  if (own != std::string::npos && !starts_with(key, "train.")) return setting_spec(key.substr(own + 1));
  static const std::map<std::string, const SettingSpec*> by_key = [] {
    std::map<std::string, const SettingSpec*> map;
    for (const auto& spec : setting_table()) map[spec.key] = &spec;
    return map;
  }();
  const auto it = by_key.find(key);
  if (it == by_key.end()) throw std::logic_error("the setting table has no key '" + key + "'");
  return *it->second;
}

const std::vector<std::pair<std::string, std::string>>& renamed_settings() {
  static const std::vector<std::pair<std::string, std::string>> renamed = {
      {"merge.router_aux_loss_coef", "finetune.load_balancing.alpha"},
  };
  return renamed;
}

std::vector<std::string> train_keys() {
  std::vector<std::string> keys;
  for (const auto& spec : setting_table()) {
    if (starts_with(spec.key, "train.")) keys.push_back(spec.key.substr(6));
  }
  return keys;
}

Json default_config() {
  Json stage_train = Json::object();
  for (const auto& key : train_keys()) stage_train[key] = nullptr;
  Json tree = Json::object();
  for (const auto& spec : setting_table()) {
    std::string pointer = "/" + spec.key;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    tree[Json::json_pointer(pointer)] = spec.type == SettingType::kTrainOverrides ? stage_train : spec.default_value;
  }
  return tree;
}

std::string config_reference_markdown() {
  std::ostringstream out;
  out << "# Experiment configs\n\n"
         "<!-- Written by `svmoe config-reference > docs/config.md` from src/config/setting_table.cpp; a test\n"
         "     fails when this file and the table differ. Edit the table, not this file. -->\n\n"
         "One YAML or JSON file per experiment holds every section; each subcommand reads the sections\n"
         "it needs, so the same file serves all stages. Values are resolved in this order, later winning:\n"
         "built-in defaults, `-c FILE` (repeatable), `--set key.path=value` (repeatable, the value read as\n"
         "YAML: `--set runtime.threads=4`, `--set forward.dtype=bfloat16`), then the subcommand's own\n"
         "flags (`--model`, `--device`, ...). `--print-config` prints the result and exits.\n\n"
         "Every key is checked: an unknown key is an error with the nearest valid key as a hint; a bad\n"
         "value is an error naming the key path, where the value came from (file, `--set`, flag),\n"
         "what was found and what was expected. Nothing touches data or a GPU before the whole config\n"
         "has been validated. Every setting is declared once, in `src/config/setting_table.cpp` (key,\n"
         "type, range or choices, help, whether it changes a stage's numbers); the defaults are the\n"
         "settings structs' initialisers (`include/svmoe/config/settings.h`), which code reads as typed\n"
         "values (enums for every choice), never as strings.\n\n"
         "A key marked *not hashed* changes how or where a stage runs, not its numbers: `svmoe run`\n"
         "does not run a step again when only such a key changed. A key marked *laid out by run* is set\n"
         "by `svmoe run` itself (docs/pipeline.md).\n";
  std::vector<std::string> laid_out;
  for (const auto& section : section_docs()) {
    out << "\n## `" << section.name << "` (" << section.used_by << ")\n\n";
    out << "| key | type | default | meaning |\n|---|---|---|---|\n";
    for (const auto& spec : setting_table()) {
      if (!starts_with(spec.key, section.name + ".")) continue;
      std::string meaning = markdown_cell(spec.help);
      if (!spec.affects_numbers) meaning += " *(not hashed)*";
      if (spec.set_by_run) {
        meaning += " *(laid out by run)*";
        laid_out.push_back("`" + spec.key + "`");
      }
      out << "| `" << spec.key.substr(section.name.size() + 1) << "` | " << type_cell(spec) << " | "
          << default_cell(spec) << " | " << meaning << " |\n";
    }
    if (!section.notes.empty()) out << "\n" << section.notes << "\n";
  }
  out << "\n`svmoe run` sets these keys itself: " << join(laid_out, ", ")
      << "; and, when no tokenizer is given or trained, `prepare.tokenizer` (the base model's). Flags: `--dir`.\n";
  out << "\nRenamed keys (an old name is an error that names the new one):\n\n";
  for (const auto& [old_key, new_key] : renamed_settings()) out << "- `" << old_key << "` -> `" << new_key << "`\n";
  return out.str();
}

}  // namespace svmoe
