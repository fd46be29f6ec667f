// Typed settings for each part of an experiment, parsed from the ConfigTree in one place.
// One experiment file holds all sections; each subcommand reads the sections it needs.
// The member initialisers below are the defaults; config/setting_rows.cpp declares each key
// (type, range, help) once, bound to its member, and default_config() builds the tree of valid
// keys from the rows. Each parse_*_settings reads the section's rows (read_settings<S>), then
// checks the rules that relate keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/enums.h"
#include "svmoe/config/merge_method.h"
#include "svmoe/config/run_model.h"
#include "svmoe/config/setting_table.h"

namespace svmoe {

class SettingReader;  // config/setting_reader.h

// How and where the process runs (every subcommand).
struct RuntimeSettings {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::string log_level = "info";
  int threads = 0;  // intra-op CPU threads; 0 = LibTorch's default
  std::uint64_t seed = 1234;
  std::int64_t distributed_timeout_s = 900;    // how long ranks wait for each other (rendezvous, collectives)
  ExpertPath expert_path = ExpertPath::kAuto;  // how MoE experts run (model/moe.h)
  bool tensorboard = true;                     // training runs also write TensorBoard event files
};

// svmoe forward: run a checkpoint on given token ids (for checks against other frameworks).
struct ForwardSettings {
  std::filesystem::path model;
  std::filesystem::path input;                  // safetensors with int64 input_ids [B, T]
  std::filesystem::path output;                 // safetensors: float32 logits [B, T, V]
  ForwardDtype dtype = ForwardDtype::kFloat32;  // compute dtype
  std::filesystem::path compare;                // optional: safetensors with expected outputs to compare with
  double atol = 1e-4;                           // tolerance for --compare
};

// svmoe generate (docs/generation.md): text from a checkpoint, for prompts given or read from a file.
struct GenerateSettings {
  std::filesystem::path model;
  std::vector<std::string> prompts;
  std::filesystem::path prompts_file;  // .jsonl ("prompt" field each line) or text (a prompt a line)
  std::filesystem::path output;        // optional JSONL of the results
  std::int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0: greedy
  std::int64_t top_k = 0;
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  std::vector<std::string> stop;
  std::int64_t batch_size = 8;
  bool kv_cache = true;
  bool routing = false;  // print each generated token's experts
  ForwardDtype dtype = ForwardDtype::kFloat32;
};

// svmoe serve: an OpenAI-compatible completions server (docs/serving.md).
struct ServeSettings {
  std::filesystem::path model;
  std::string model_name;  // the id clients name; empty: the model directory's name
  std::string host = "127.0.0.1";
  std::int64_t port = 8000;
  std::string api_key;              // empty: no key needed (or the SVMOE_API_KEY environment variable's)
  std::int64_t max_batch_size = 8;  // sequences generated together
  std::int64_t max_queued = 256;    // sequences waiting before new requests get 503
  std::int64_t max_request_bytes = 1 << 20;
  std::int64_t max_prompt_tokens = 0;    // 0: the model's max_position_embeddings
  std::int64_t max_tokens = 2048;        // the largest max_tokens a request may ask for
  std::int64_t default_max_tokens = 16;  // OpenAI's default
  std::int64_t max_logprobs = 20;
  std::int64_t http_threads = 32;
  bool kv_cache = true;
  ForwardDtype dtype = ForwardDtype::kFloat32;
};

// svmoe prepare (SPEC.md §2): corpus -> subdomains, token shards and the router's TF-IDF targets.
struct TokenizerTrainSettings {
  bool enabled = false;  // train a SentencePiece tokenizer on the corpus first
  std::int64_t vocab_size = 8000;
  TokenizerModelType model_type = TokenizerModelType::kUnigram;
  double character_coverage = 0.9995;
  std::int64_t input_sentence_size = 1000000;  // sentences sampled for training
};

struct PrepareSettings {
  std::vector<std::filesystem::path> corpus;  // JSONL files (.jsonl, .jsonl.gz, .jsonl.zst) or directories of them
  std::string text_field = "text";
  std::string category_field = "category";
  bool skip_bad_lines = false;
  std::filesystem::path output;
  std::filesystem::path tokenizer;  // model directory, tokenizer.json or tokenizer.model
  TokenizerTrainSettings tokenizer_train;
  int num_subdomains = 8;
  std::vector<std::string> categories;  // if not empty: the categories to keep; others are skipped and counted
  std::vector<std::string> pinned_categories;
  // {category: subdomain ID 1..N}: the subdomains given (the paper's Table 4), no clustering.
  std::map<std::string, int> subdomain_of;
  int neighbors = 0;  // k of the clustering's k-nearest-neighbour graph; 0: round(sqrt(M)) + 1
  ClusterSizes cluster_sizes = ClusterSizes::kStrict;  // strict: size_tolerance; equity: equity_fraction
  int size_tolerance = 1;
  double equity_fraction = 0.3;
  double train_fraction = 0.8;
  double valid_fraction = 0.1;
  double test_fraction = 0.1;
  bool add_bos = false;         // before each document in the shards
  bool add_eos = true;          // after each document in the shards
  int threads = 0;              // tokenisation threads; 0: all cores
  std::int64_t buffer_mb = 64;  // corpus text held in memory at once
};

// The load-balancing term of MoE fine-tuning (SPEC.md §4, stage 4).
struct LoadBalancingSettings {
  LoadBalancingMethod method = LoadBalancingMethod::kNone;
  double alpha = 0.01;  // the one LB coefficient (SPEC.md §4); also config.json's router_aux_loss_coef
  LoadBalancingPooling pooling = LoadBalancingPooling::kPooled;
  double aux_free_rate = 1e-3;  // aux_free's bias step per optimizer step
};

// svmoe merge (SPEC.md §4, stage 2): N dense experts -> one Mixtral MoE (BTX), or a Qwen2-MoE
// with a shared expert.
struct MergeSettings {
  MergeMethod method = MergeMethod::kBtx;
  // The inputs: N >= 2 trained dense Llama experts (btx, btx_drop_upcycling), or one dense model
  // copied num_experts times (naive, noise, drop_upcycling).
  std::vector<std::filesystem::path> experts;
  std::filesystem::path base_model;  // the model copied; with trained experts, the shared expert's source (base)
  std::int64_t num_experts = 0;      // the copies; 0 with trained experts (their count)
  std::filesystem::path output;
  MoeKind moe_kind = MoeKind::kSparse;                       // Mixtral's top-k routing, or the causal Soft MoE
  SharedExpertInit shared_expert = SharedExpertInit::kNone;  // kBase/kMean: a Qwen2-MoE (docs/moe.md)
  std::int64_t num_experts_per_tok = 2;                      // top-k (sparse)
  RouterInit router_init = RouterInit::kNormal;
  double router_init_std = 0.0;  // 0: the dense model's initializer_range
  // Drop-Upcycling's r: the fraction of each expert's FFN neurons re-drawn (drop_upcycling,
  // btx_drop_upcycling) or perturbed (noise).
  double drop_ratio = 0.5;
  double noise_std = 0.02;           // noise: the perturbation's standard deviation
  std::int64_t max_shard_mb = 5000;  // safetensors shard size
};

// The training engine (every training stage): optimizer, schedule, batches, checkpoints.
struct TrainSettings {
  std::int64_t steps = 1000;
  std::int64_t micro_batch = 8;  // sequences per forward/backward
  std::int64_t grad_accum = 1;   // micro-batches per optimizer step
  std::int64_t sequence_length = 512;
  double learning_rate = 3e-4;  // peak
  double min_lr_ratio = 0.1;    // the schedule's floor, as a fraction of the peak
  std::int64_t warmup_steps = 100;
  LrSchedule schedule = LrSchedule::kCosine;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // global norm; 0: none
  std::int64_t log_every = 10;
  std::int64_t eval_every = 100;  // 0: only at the end
  std::int64_t eval_batches = 8;
  std::int64_t save_every = 200;  // 0: only at the end
  std::int64_t keep_last = 2;     // checkpoints kept
  // auto: float32 on the CPU, bf16_mixed on CUDA; bf16_mixed: bf16 parameters and compute with
  // float32 master weights and moments; bf16: no master weights; float32.
  Precision precision = Precision::kAuto;
  // 0: every rank holds the whole optimizer state; 1: ZeRO stage 1, the state (moments and
  // master weights) sharded over the data-parallel ranks.
  std::int64_t zero_stage = 0;
  // Keep only each block's input for the backward pass and recompute the rest there: about a
  // third more compute for much less activation memory (docs/training.md).
  bool activation_checkpointing = false;
};

// svmoe finetune: the engine on a dense model and any mix of subdomains (all: the Dense baseline).
struct FinetuneSettings {
  std::filesystem::path model;  // a Hugging Face directory (its config.json, and weights unless init is random)
  ModelInit init = ModelInit::kPretrained;  // random: the HF initialiser
  std::filesystem::path dataset;            // a directory svmoe prepare wrote
  std::vector<std::int64_t> subdomains;     // empty: all
  // Sampling weights of `subdomains` (same length); empty: every window equally likely (a mix
  // in proportion to the subdomains' sizes).
  std::vector<double> subdomain_weights;
  std::filesystem::path output;          // the run directory: checkpoints, metrics.jsonl, final/
  LoadBalancingSettings load_balancing;  // MoE models only
};

// The router's TF-IDF teacher (SPEC.md §2.4): from which splits' token counts, with which tf.
struct TeacherSettings {
  TeacherSplit split = TeacherSplit::kTrain;
  TermFrequency tf = TermFrequency::kRaw;
};

// svmoe train-router (SPEC.md §4, stage 3): only the routers of a merged MoE, against the
// dataset's TF-IDF targets, on the training splits of all subdomains.
struct TrainRouterSettings {
  std::filesystem::path model;  // an MoE directory (svmoe merge's output)
  std::filesystem::path dataset;
  std::filesystem::path output;                         // the run directory; the trained MoE in OUTPUT/final/
  MissingTarget missing_target = MissingTarget::kMask;  // tokens without a TF-IDF target
  RouterLoss loss = RouterLoss::kSoftCrossEntropy;      // which reading of the paper's l_CE (SPEC.md §4)
  TeacherSettings teacher;                              // which TF-IDF the routers learn
  // false: the paper's loss under autograd (router l also learns from later layers' terms
  // through the residual stream); true: each router from its own term only (docs/training.md).
  bool detach_router_inputs = false;
};

// svmoe train-experts (SPEC.md §4, stage 1): one expert per subdomain, each the base model
// trained on that subdomain's training split.
struct TrainExpertsSettings {
  std::filesystem::path base_model;
  ModelInit init = ModelInit::kPretrained;
  std::filesystem::path dataset;
  std::filesystem::path output;                           // writes OUTPUT/expert_N/ (and OUTPUT/runs/expert_N/)
  ExpertCoverage coverage = ExpertCoverage::kSubdomains;  // what expert k is trained on (config/expert_coverage.h)
  std::vector<std::int64_t> experts;  // which experts; empty: all (--expert N: one, for a Slurm array task)
};

// svmoe eval (SPEC.md §5): the paper's metrics for named models on splits of a prepared dataset.
struct EvalModel {
  std::string name;  // as the tables show it (Dense, BTX, SvMoE, ...)
  std::filesystem::path path;
  std::string lb = "-";  // the LB column: yes | no | - (dense)
};
struct FewShotSettings {
  std::filesystem::path items;      // JSONL true/false items; empty: no few-shot evaluation
  std::filesystem::path shot_file;  // JSONL solved shots (required with items)
  std::int64_t k = 5;
  std::string prompt = "{statement}\n答え:";
  std::vector<std::string> answers = {" 誤り", " 正しい"};  // [false, true]
  std::string separator = "\n\n";
  ShotDraw draw = ShotDraw::kPerItem;  // k shots per item, or one set for all items
};
// The BTM ensemble baseline of dense experts (docs/eval.md).
struct BtmSettings {
  std::vector<std::filesystem::path> experts;  // as `coverage` counts them; empty: no BTM row
  ExpertCoverage coverage = ExpertCoverage::kSubdomains;
  EnsembleWeighting weighting = EnsembleWeighting::kTfidf;
  std::string name = "BTM ensemble";
};
struct EvalSettings {
  std::vector<EvalModel> models;
  std::filesystem::path dataset;
  std::vector<DataSplit> splits = {DataSplit::kTest};
  std::filesystem::path output;     // the tables, figures' data and raw numbers
  std::int64_t context_length = 0;  // tokens per scoring window; 0: the model's max_position_embeddings
  std::int64_t max_documents = 0;   // per subdomain and split; 0: all
  FewShotSettings fewshot;          // the paper's Table 3
  BtmSettings btm;                  // the BTM ensemble baseline (docs/eval.md)
};

// svmoe report: one self-contained HTML page with the figures and tables of an experiment.
struct ReportRun {
  std::string name;
  std::filesystem::path path;  // a run directory holding metrics.jsonl
};
struct ReportSettings {
  std::vector<ReportRun> runs;   // loss curves
  std::string text;              // routed-text view ("" : none)
  std::int64_t layer = 0;        // the layer whose routing the text view shows
  std::filesystem::path output;  // empty: EVAL_OUTPUT/report.html
};

// svmoe run: the whole recipe from one config, every stage's output in one experiment directory
// (docs/pipeline.md). The stages' own sections give their settings; `run` gives the rest.
struct RunSettings {
  std::filesystem::path dir;         // the experiment directory
  std::filesystem::path base_model;  // a Hugging Face directory (with pretrain_base: only its config.json is read)
  bool pretrain_base = false;        // train the base model from scratch on all subdomains first (the example)
  // The models of the tables, fine-tuned in stage 4 (config/run_model.h); by default the paper's five.
  std::vector<RunModel> models = paper_models();
  LoadBalancingMethod lb_method = LoadBalancingMethod::kSwitch;  // switch | aux_free
  bool btm_ensemble = false;                                     // also evaluate the BTM ensemble of dense experts
  ExpertCoverage btm_coverage = ExpertCoverage::kSubdomains;     // its experts: stage 1's, or one per pair
};

RuntimeSettings parse_runtime_settings(const ConfigTree& config);
ForwardSettings parse_forward_settings(const ConfigTree& config);
GenerateSettings parse_generate_settings(const ConfigTree& config);
ServeSettings parse_serve_settings(const ConfigTree& config);

// The stages' sections. A subcommand parses its section from its config (PathsFrom::kConfig):
// every row read, then the rules between keys checked. svmoe run parses each section once with
// PathsFrom::kRunLayout: the rows it lays out (docs/config.md, "laid out by run") are not read,
// nor are the rules checked; it sets those rows for each step, then checks the step's settings
// with the same check_*_settings a subcommand's parse runs (stages/pipeline.cpp).
PrepareSettings parse_prepare_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
MergeSettings parse_merge_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
FinetuneSettings parse_finetune_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
TrainExpertsSettings parse_train_experts_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
TrainRouterSettings parse_train_router_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
EvalSettings parse_eval_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
ReportSettings parse_report_settings(const ConfigTree& config, PathsFrom paths = PathsFrom::kConfig);
RunSettings parse_run_settings(const ConfigTree& config);

// The rules between keys of a section, on its typed settings (`read` names the keys and where
// they came from in an error). check_merge_settings also completes num_experts (the experts'
// count, when they are merged).
void check_prepare_settings(const PrepareSettings& s, const SettingReader& read);
void check_merge_settings(MergeSettings& s, const SettingReader& read);
void check_finetune_settings(const FinetuneSettings& s);
void check_eval_settings(const EvalSettings& s, const SettingReader& read);

// The value of a merge method's parameter (config/merge_method.h) in `settings`.
double merge_parameter_value(const MergeSettings& settings, MergeParameter parameter);
// The `train` section, with the keys a stage's own `STAGE.train` section sets (non-null) in
// their place: one experiment file can give each stage its own steps, learning rate, ...
TrainSettings parse_train_settings(const ConfigTree& config, const std::string& stage = {});

}  // namespace svmoe
