#include "svmoe/train/benchmark.h"

#include <gtest/gtest.h>

#include <cmath>

#include "svmoe/util/error.h"

namespace svmoe {

// ../shared/GPU.md's figures: 4 blocks of the llm-jp-3-1.8b shape (vocabulary 99,487) as 8
// experts top-2 at 2048 tokens make 45,400 tokens/s 22% and 98,900 tokens/s 49% of 782 TFLOP/s.
TEST(Benchmark, ModelFlopsAsGpuMdCountsThem) {
  ModelConfig model = bench_preset("reference").model;
  model.vocab_size = 99487;
  const double flops = model_flops_per_token(model, 2048);
  const double by_hand =
      6 * (4 * (4.0 * 2048 * 2048 + 2 * 3.0 * 2048 * 7168 + 2048.0 * 8) + 2048.0 * 99487) + 6 * 4 * 2048.0 * 2048;
  EXPECT_DOUBLE_EQ(flops, by_hand);
  EXPECT_NEAR(45400 * flops / 782e12, 0.22, 0.005);
  EXPECT_NEAR(98900 * flops / 782e12, 0.49, 0.005);
  // The goal of 480 TFLOP/s is about 124,000 tokens/s at the preset's vocabulary.
  EXPECT_NEAR(480e12 / model_flops_per_token(bench_preset("reference").model, 2048), 124000, 1500);
  EXPECT_THROW(bench_preset("huge"), ConfigError);
}

// The tiny preset runs on the CPU (so the bench cannot rot): every measurement has a time, and
// its figures are consistent with each other.
TEST(Benchmark, TinyPresetMeasuresEverythingOnTheCpu) {
  BenchOptions options;
  options.warmup = 0;
  options.repetitions = 1;
  const BenchReport report = run_bench(bench_preset("tiny"), options);
  EXPECT_GT(report.peak_tflops, 0.0);
  ASSERT_EQ(report.measurements.size(), 5u);
  const std::vector<std::string> names = {"train_step", "forward", "router_step", "moe_layer_loop",
                                          "moe_layer_grouped"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& m = report.measurements[i];
    EXPECT_EQ(m.name, names[i]);
    EXPECT_GT(m.seconds, 0.0) << m.name;
    EXPECT_NEAR(m.tokens_per_s, 8 * 128 / m.seconds, 1e-6 * m.tokens_per_s) << m.name;
    EXPECT_NEAR(m.tflops, m.tokens_per_s * m.flops_per_token / 1e12, 1e-9) << m.name;
    EXPECT_NEAR(m.mfu, m.tflops / report.peak_tflops, 1e-12) << m.name;
    EXPECT_GT(m.peak_memory_mb, 0.0) << m.name;
  }
  EXPECT_LT(report.measurements[1].seconds, report.measurements[0].seconds);  // forward < a training step
  EXPECT_EQ(report.to_json()["measurements"].size(), 5u);
  EXPECT_EQ(report.to_json()["expert_path"], "auto");
}

}  // namespace svmoe
