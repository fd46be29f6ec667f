// svmoe bench: training speed on the current device (tokens/s, model TFLOP/s, MFU, memory), or
// with --generate the speed of generation with and without the KV cache.
#include "svmoe/train/benchmark.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "svmoe/eval/generation.h"
#include "svmoe/model/device.h"
#include "svmoe/model/initialization.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/logging.h"

namespace svmoe::cli {
namespace {
struct BenchCliOptions {
  std::string preset = "tiny";
  std::string device = "auto";
  std::string json;
  int warmup = 2, repetitions = 5;
  int threads = 0;
  bool activation_checkpointing = false;
  std::string expert_path = "auto";
  std::int64_t blocks = 0, experts = 0, top_k = 0, batch = 0;
  bool generate = false;
  std::int64_t prompt_length = 32, new_tokens = 256;
};

// Greedy generation of random prompts with and without the cache, batch 1 and 8 (or --batch).
void bench_generation(const BenchPreset& preset, const BenchCliOptions& options, const BenchOptions& bench) {
  CausalLM model(preset.model);
  initialize_weights(*model, preset.model.initializer_range, 1);
  model->to(bench.device, bench.dtype);
  model->eval();
  const std::vector<std::int64_t> batches =
      options.batch > 0 ? std::vector<std::int64_t>{options.batch} : std::vector<std::int64_t>{1, 8};
  std::cout << fmt::format(
                   "svmoe bench --generate on {} ({}): preset {} ({} blocks, {} experts top-{}), prompts of {} "
                   "tokens, {} new tokens, greedy\n",
                   bench.device.str(), bench.dtype == torch::kBFloat16 ? "bfloat16" : "float32", preset.name,
                   preset.model.num_hidden_layers, preset.model.num_local_experts, preset.model.num_experts_per_tok,
                   options.prompt_length, options.new_tokens)
            << fmt::format("{:>5}  {:>8}  {:>15}  {:>19}  {:>12}\n", "batch", "kv cache", "prompt tokens/s",
                           "generation tokens/s", "generation s")
            << std::flush;
  for (const auto batch : batches) {
    double seconds[2] = {0, 0};
    for (const bool cache : {true, false}) {
      // One short untimed run first: the allocator and the thread pool warm up.
      time_generation(*model, batch, options.prompt_length, 2, cache, 0);
      const GenerationTimings t = time_generation(*model, batch, options.prompt_length, options.new_tokens, cache, 1);
      seconds[cache ? 0 : 1] = t.generation_seconds;
      std::cout << fmt::format("{:>5}  {:>8}  {:>15.1f}  {:>19.1f}  {:>12.2f}\n", batch, cache ? "on" : "off",
                               t.prompt_tokens / t.prompt_seconds, t.generated_tokens / t.generation_seconds,
                               t.generation_seconds)
                << std::flush;
    }
    std::cout << fmt::format("batch {}: the cache generates {:.1f}x faster\n", batch, seconds[1] / seconds[0]);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "bench", "how fast this build trains here: tokens/s, model TFLOP/s and MFU of a training step (random weights)");
  auto options = std::make_shared<BenchCliOptions>();
  command->add_option("--preset", options->preset, "reference (4 blocks of llm-jp-3-1.8b as 8x top-2) or tiny")
      ->check(CLI::IsMember({"reference", "tiny"}));
  command->add_option("--device", options->device, "auto, cpu, cuda or cuda:N");
  command->add_option("--json", options->json, "also write the figures to this JSON file");
  command->add_option("--warmup", options->warmup, "untimed repetitions first (default 2)")->check(CLI::Range(0, 1000));
  command->add_option("--repetitions", options->repetitions, "timed repetitions; the median is reported (default 5)")
      ->check(CLI::Range(1, 100000));
  command->add_option("--threads", options->threads, "CPU threads (default: all cores)");
  command->add_flag("--activation-checkpointing", options->activation_checkpointing,
                    "recompute each block in the backward pass (train.activation_checkpointing)");
  command
      ->add_option("--expert-path", options->expert_path,
                   "how the MoE experts run in the whole-model steps: auto (grouped where at::_grouped_mm applies), "
                   "loop or grouped")
      ->check(CLI::IsMember(enum_names<ExpertPath>()));
  command->add_option("--blocks", options->blocks, "override the preset's number of blocks")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000}));
  command->add_option("--experts", options->experts, "override the preset's number of experts")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1024}));
  command->add_option("--top-k", options->top_k, "override the preset's experts per token")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1024}));
  command->add_option("--batch", options->batch, "override the preset's sequences per step")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  command->add_flag("--generate", options->generate,
                    "measure generation instead: tokens/s with and without the KV cache, batch 1 and 8 (or --batch)");
  command->add_option("--prompt-length", options->prompt_length, "--generate: prompt tokens (default 32)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  command->add_option("--new-tokens", options->new_tokens, "--generate: tokens generated (default 256)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  command->callback([options] {
    set_cpu_threads(options->threads);
    BenchOptions bench;
    bench.device = resolve_device(options->device);
    bench.dtype = bench.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
    bench.warmup = options->warmup;
    bench.repetitions = options->repetitions;
    bench.activation_checkpointing = options->activation_checkpointing;
    bench.expert_path = *enum_from_name<ExpertPath>(options->expert_path);
    BenchPreset preset = bench_preset(options->preset);
    if (options->blocks > 0) preset.model.num_hidden_layers = options->blocks;
    if (options->experts > 0) preset.model.num_local_experts = options->experts;
    if (options->top_k > 0) preset.model.num_experts_per_tok = options->top_k;
    if (options->batch > 0) preset.batch = options->batch;
    if (preset.model.num_experts_per_tok > preset.model.num_local_experts) {
      throw ConfigError("--top-k " + std::to_string(preset.model.num_experts_per_tok) + " is more than the " +
                            std::to_string(preset.model.num_local_experts) + " experts",
                        "choose --top-k at most --experts");
    }
    if (options->generate) {
      torch::NoGradGuard no_grad;
      bench_generation(preset, *options, bench);
      return;
    }
    const BenchReport report = run_bench(preset, bench);
    std::cout << "svmoe bench on " << bench.device.str() << " (" << (bench.device.is_cuda() ? "bfloat16" : "float32")
              << (bench.activation_checkpointing ? ", activation checkpointing" : "")
              << ", experts: " << options->expert_path << ")\n"
              << bench_table(report) << std::flush;
    if (!options->json.empty()) write_file_atomically(options->json, report.to_json().dump(2) + "\n");
  });
}

}  // namespace svmoe::cli
