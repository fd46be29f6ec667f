// The subcommands that run one library call on the experiment config, one row each: its name,
// help, flags (each a config key: help and type come from the setting table) and the call.
#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/eval/forward_check.h"
#include "svmoe/stages/evaluate.h"
#include "svmoe/stages/finetune.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/stages/report.h"
#include "svmoe/stages/train_experts.h"
#include "svmoe/stages/train_router.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace {

void requeue_if(bool interrupted) {
  if (interrupted) throw ExitRequest{kExitRequeue};
}

void prepare(const ConfigTree& config) {
  Json recorded = config.root();
  recorded.erase("forward");
  const PrepareResult result = run_prepare(parse_prepare_settings(config), parse_runtime_settings(config), recorded);
  std::cout << "\nTable 1: tokens per subdomain and split\n\n" << result.table1_markdown;
  std::cout << "\nTable 4: categories of each subdomain\n\n" << result.table4_markdown << std::flush;
}

void train_experts(const ConfigTree& config) {
  const RuntimeSettings runtime = parse_runtime_settings(config);
  requeue_if(run_train_experts(parse_train_experts_settings(config), parse_train_settings(config, "train_experts"),
                               runtime, start_training(runtime))
                 .interrupted);
}

void merge(const ConfigTree& config) { run_merge(parse_merge_settings(config), parse_runtime_settings(config)); }

void train_router(const ConfigTree& config) {
  const RuntimeSettings runtime = parse_runtime_settings(config);
  requeue_if(run_train_router(parse_train_router_settings(config), parse_train_settings(config, "train_router"),
                              runtime, start_training(runtime))
                 .interrupted);
}

void finetune(const ConfigTree& config) {
  const RuntimeSettings runtime = parse_runtime_settings(config);
  requeue_if(run_finetune(parse_finetune_settings(config), parse_train_settings(config, "finetune"), runtime,
                          start_training(runtime))
                 .interrupted);
}

void eval(const ConfigTree& config) { run_eval(parse_eval_settings(config), parse_runtime_settings(config)); }

void report(const ConfigTree& config) {
  std::cout
      << run_report(parse_report_settings(config), parse_eval_settings(config), parse_runtime_settings(config)).string()
      << "\n";
}

void forward(const ConfigTree& config) {
  run_forward_check(parse_forward_settings(config), parse_runtime_settings(config));
}

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
      {"prepare",
       "split a categorised JSONL corpus into subdomains; write token shards and the router's TF-IDF targets",
       {{"--corpus", "prepare.corpus", K::kList},
        {"--output", "prepare.output"},
        {"--tokenizer", "prepare.tokenizer"},
        {"--subdomains", "prepare.num_subdomains"}},
       false,
       prepare},
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
       train_experts},
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
       merge},
      {"train-router",
       "stage 3: train only the routers of a merged MoE on the TF-IDF targets",
       {{"--model", "train_router.model"},
        {"--dataset", "train_router.dataset"},
        {"--output", "train_router.output"},
        {"--steps", "train_router.train.steps"}},
       true,
       train_router},
      {"finetune",
       "train a model as a causal LM on subdomains of a prepared dataset",
       {{"--model", "finetune.model"},
        {"--dataset", "finetune.dataset"},
        {"--output", "finetune.output"},
        {"--steps", "finetune.train.steps"}},
       true,
       finetune},
      {"eval",
       "PPL, CMR_1, CMR_2, S_RL and expert selection of models; the paper's tables",
       {{"--dataset", "eval.dataset"},
        {"--output", "eval.output"},
        {"--split", "eval.splits", K::kList},
        {"--max-documents", "eval.max_documents"}},
       false,
       eval},
      {"report",
       "one self-contained HTML page: loss curves, expert selection, routed text and the tables (after svmoe eval)",
       {{"--output", "report.output"}, {"--text", "report.text"}},
       false,
       report},
  };
  return rows;
}

}  // namespace

void add_config_commands(CLI::App& app) {
  for (const ConfigCommand& row : config_commands()) add_config_command(app, row);
}

}  // namespace svmoe::cli
