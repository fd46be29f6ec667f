// svmoe bench: training speed on the current device (tokens/s, model TFLOP/s, MFU, memory).
#include "svmoe/train/benchmark.h"

#include <iostream>

#include "commands.h"
#include "svmoe/model/device.h"
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
};
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
      ->check(CLI::IsMember({"auto", "loop", "grouped"}));
  command->callback([options] {
    set_cpu_threads(options->threads);
    BenchOptions bench;
    bench.device = resolve_device(options->device);
    bench.dtype = bench.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
    bench.warmup = options->warmup;
    bench.repetitions = options->repetitions;
    bench.activation_checkpointing = options->activation_checkpointing;
    bench.expert_path = parse_expert_path(options->expert_path);
    const BenchReport report = run_bench(bench_preset(options->preset), bench);
    std::cout << "svmoe bench on " << bench.device.str() << " (" << (bench.device.is_cuda() ? "bfloat16" : "float32")
              << (bench.activation_checkpointing ? ", activation checkpointing" : "")
              << ", experts: " << options->expert_path << ")\n"
              << bench_table(report) << std::flush;
    if (!options->json.empty()) write_file_atomically(options->json, report.to_json().dump(2) + "\n");
  });
}

}  // namespace svmoe::cli
