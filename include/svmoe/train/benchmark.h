// svmoe bench: how fast this build trains on the current device, in the terms of
// ../shared/GPU.md: tokens/s, model TFLOP/s and their fraction of a peak measured here with
// one large matmul (MFU). Random weights and random tokens; nothing is read or written.
#pragma once

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "svmoe/model/model_config.h"
#include "svmoe/model/moe.h"

namespace svmoe {

struct BenchPreset {
  std::string name;
  ModelConfig model;
  std::int64_t batch = 1, sequence_length = 1;
};

// "reference": 4 blocks of the llm-jp-3-1.8b shape (hidden 2048, FFN 7168, 16 heads, vocabulary
// 99584) with 8 experts top-2, batch 4 x 2048; "tiny": the quickstart's model (configs/quickstart)
// as an 8-expert top-2 MoE, batch 8 x 128. Throws ConfigError for another name.
BenchPreset bench_preset(const std::string& name);

struct BenchMeasurement {
  std::string name;    // train_step | forward | router_step | moe_layer_loop | moe_layer_grouped
  double seconds = 0;  // per step, the median of the timed repetitions
  double tokens_per_s = 0;
  double flops_per_token = 0;  // model FLOPs counted for this measurement
  double tflops = 0;           // model TFLOP/s
  double mfu = 0;              // tflops / the measured peak
  double peak_memory_mb = 0;   // CUDA: the allocator's peak during it; CPU: the process's peak RSS so far
};

struct BenchOptions {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;  // bf16 on CUDA (bf16_mixed), float32 on the CPU
  int warmup = 2;
  int repetitions = 5;
  bool activation_checkpointing = false;
  ExpertPath expert_path = ExpertPath::kAuto;  // for the whole-model measurements
};

struct BenchReport {
  BenchPreset preset;
  double peak_tflops = 0;  // one large matmul in the compute dtype
  ExpertPath expert_path = ExpertPath::kAuto;
  std::vector<BenchMeasurement> measurements;
  nlohmann::json to_json() const;
};

BenchReport run_bench(const BenchPreset& preset, const BenchOptions& options);

// The report as a table for people, with the formula's inputs.
std::string bench_table(const BenchReport& report);

}  // namespace svmoe
