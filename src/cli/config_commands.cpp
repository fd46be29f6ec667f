// The subcommands that run one library call on the experiment config, one row each: its name,
// help, flags (each a config key: help and type come from the setting table) and what it runs:
// a stage (stages/stage.h, the same call svmoe run makes for a step of that stage) or the
// forward check.
#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/eval/forward_check.h"
#include "svmoe/eval/generate_command.h"
#include "svmoe/serve/server.h"
#include "svmoe/stages/stage.h"

namespace svmoe::cli {
namespace {

void forward(const ConfigTree& config) {
  run_forward_check(parse_forward_settings(config), parse_runtime_settings(config));
}

void generate(const ConfigTree& config) {
  run_generate(parse_generate_settings(config), parse_runtime_settings(config));
}

void serve(const ConfigTree& config) { run_serve(parse_serve_settings(config), parse_runtime_settings(config)); }

const std::vector<ConfigCommand>& config_commands() {
  using K = FlagKind;
  static const std::vector<ConfigCommand> rows = {
      {"forward",
       "run a checkpoint on token ids; write or compare its logits",
       {{"--model", "forward.model"},
        {"--input", "forward.input"},
        {"--output", "forward.output"},
        {"--dtype", "forward.dtype"},
        {"--compare", "forward.compare"},
        {"--atol", "forward.atol"}},
       false,
       forward},
      {"generate",
       "generate text from a checkpoint (greedy or sampled; --routing shows each token's experts)",
       {{"--model", "generate.model"},
        {"--prompt", "generate.prompts", K::kList, "a prompt (repeatable)"},
        {"--prompts-file", "generate.prompts_file"},
        {"--output", "generate.output"},
        {"--max-new-tokens", "generate.max_new_tokens"},
        {"--temperature", "generate.temperature"},
        {"--top-k", "generate.top_k"},
        {"--top-p", "generate.top_p"},
        {"--repetition-penalty", "generate.repetition_penalty"},
        {"--stop", "generate.stop", K::kList, "a stop string (repeatable)"},
        {"--batch-size", "generate.batch_size"},
        {"--no-kv-cache", "generate.kv_cache", K::kSwitch, "recompute every step instead of caching", false},
        {"--routing", "generate.routing", K::kSwitch},
        {"--dtype", "generate.dtype"}},
       false,
       generate},
      {"serve",
       "serve a checkpoint over an OpenAI-compatible HTTP API (/v1/completions with log-probs, echo, streaming "
       "and each token's experts; docs/serving.md)",
       {{"--model", "serve.model"},
        {"--model-name", "serve.model_name"},
        {"--host", "serve.host"},
        {"--port", "serve.port"},
        {"--api-key", "serve.api_key"},
        {"--max-batch-size", "serve.max_batch_size"},
        {"--max-queued", "serve.max_queued"},
        {"--max-request-bytes", "serve.max_request_bytes"},
        {"--max-prompt-tokens", "serve.max_prompt_tokens"},
        {"--max-tokens", "serve.max_tokens"},
        {"--max-logprobs", "serve.max_logprobs"},
        {"--http-threads", "serve.http_threads"},
        {"--no-kv-cache", "serve.kv_cache", K::kSwitch, "recompute every step instead of caching", false},
        {"--dtype", "serve.dtype"}},
       true,
       serve},
      {"prepare",
       "split a categorised JSONL corpus into subdomains; write token shards and the router's TF-IDF targets",
       {{"--corpus", "prepare.corpus", K::kList},
        {"--output", "prepare.output"},
        {"--tokenizer", "prepare.tokenizer"},
        {"--subdomains", "prepare.num_subdomains"}},
       false,
       Stage::kPrepare},
      {"train-experts",
       "stage 1: train one expert per subdomain from the base model",
       {{"--base-model", "train_experts.base_model"},
        {"--dataset", "train_experts.dataset"},
        {"--output", "train_experts.output"},
        {"--coverage", "train_experts.coverage"},
        {"--expert", "train_experts.experts", K::kOneItemList,
         "train only expert N (a Slurm array task: --expert $SLURM_ARRAY_TASK_ID)"},
        {"--steps", "train_experts.train.steps", K::kValue, "optimizer steps per expert"}},
       true,
       Stage::kTrainExperts},
      {"merge",
       "build one MoE (a Mixtral, or a Qwen2-MoE with a shared expert): merge N trained dense experts (BTX), or "
       "upcycle one dense model",
       {{"--method", "merge.method"},
        {"--experts", "merge.experts", K::kList},
        {"--base-model", "merge.base_model"},
        {"--num-experts", "merge.num_experts"},
        {"--drop-ratio", "merge.drop_ratio"},
        {"--shared-expert", "merge.shared_expert"},
        {"--output", "merge.output"},
        {"--top-k", "merge.num_experts_per_tok"}},
       false,
       Stage::kMerge},
      {"train-router",
       "stage 3: train only the routers of a merged MoE on the TF-IDF targets",
       {{"--model", "train_router.model"},
        {"--dataset", "train_router.dataset"},
        {"--output", "train_router.output"},
        {"--steps", "train_router.train.steps"}},
       true,
       Stage::kTrainRouter},
      {"finetune",
       "train a model as a causal LM on subdomains of a prepared dataset",
       {{"--model", "finetune.model"},
        {"--dataset", "finetune.dataset"},
        {"--output", "finetune.output"},
        {"--steps", "finetune.train.steps"}},
       true,
       Stage::kFinetune},
      {"eval",
       "PPL, CMR_1, CMR_2, S_RL and expert selection of models; the paper's tables",
       {{"--dataset", "eval.dataset"},
        {"--output", "eval.output"},
        {"--split", "eval.splits", K::kList},
        {"--max-documents", "eval.max_documents"}},
       false,
       Stage::kEval},
      {"report",
       "one self-contained HTML page: loss curves, expert selection, routed text and the tables (after svmoe eval)",
       {{"--output", "report.output"}, {"--text", "report.text"}},
       false,
       Stage::kReport},
  };
  return rows;
}

}  // namespace

void add_config_commands(CLI::App& app) {
  for (const ConfigCommand& row : config_commands()) add_config_command(app, row);
}

}  // namespace svmoe::cli
