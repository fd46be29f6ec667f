#include "svmoe/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/model/initialization.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

TrainingJob tiny_job(const fs::path& dataset, const fs::path& output) {
  const HfCheckpoint base = load_hf_checkpoint(test::model_fixture("llama_gqa_tied_theta5e5"));
  TrainingJob job;
  job.model = CausalLM(base.config);
  initialize_weights(*job.model, 0.02, 1);
  job.base_config = base.raw_config;
  job.train_sources = {SamplerSource{{shard_prefix(dataset, 0, "train"), shard_prefix(dataset, 1, "train")}, 1.0}};
  job.valid_shards = {shard_prefix(dataset, 0, "valid")};
  job.output = output;
  job.seed = 5;
  return job;
}

TrainSettings tiny_settings(std::int64_t steps) {
  TrainSettings t;
  t.steps = steps;
  t.micro_batch = 4;
  t.grad_accum = 2;
  t.sequence_length = 32;
  t.learning_rate = 3e-3;
  t.warmup_steps = 0;
  t.schedule = LrSchedule::kConstant;  // so that a shorter run is a prefix of a longer one
  t.log_every = 1;
  t.eval_every = 0;
  t.eval_batches = 2;
  t.save_every = 3;
  return t;
}

std::vector<double> losses(const fs::path& metrics) {
  std::vector<double> values;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto json = nlohmann::json::parse(line);
    if (json.contains("loss")) values.push_back(json["loss"].get<double>());
  }
  return values;
}

}  // namespace

TEST(Trainer, LossFallsAndCheckpointsAreWritten) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  TrainingJob job = tiny_job(dataset, dir / "run");
  TrainSettings t = tiny_settings(12);
  const TrainResult result = train_model(job, t);
  EXPECT_EQ(result.steps, 12);
  const auto curve = losses(dir / "run" / "metrics.jsonl");
  ASSERT_EQ(curve.size(), 12u);
  EXPECT_LT(curve.back(), curve.front() - 1.0);
  ASSERT_TRUE(result.valid_loss.has_value());
  EXPECT_LT(*result.valid_loss, std::log(3000.0));
  // keep_last 2: checkpoints 9 and 12 remain, each a loadable Hugging Face directory.
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoint-6"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint-9" / "trainer_state.json"));
  EXPECT_EQ(RunDirectory(dir / "run").latest_complete_checkpoint(), dir / "run" / "checkpoint-12");
  EXPECT_NO_THROW(load_hf_checkpoint(dir / "run" / "checkpoint-12"));
  EXPECT_NE(read_text_file(dir / "run" / "train.log").find("step 12/12"), std::string::npos);
}

// A run stopped after a checkpoint and resumed gives exactly the uninterrupted run's losses.
TEST(Trainer, ResumeIsBitExactOnTheCpu) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  TrainingJob whole = tiny_job(dataset, dir / "whole");
  train_model(whole, tiny_settings(8));

  TrainingJob first = tiny_job(dataset, dir / "parts");
  train_model(first, tiny_settings(4));            // stops after step 4 (checkpoints at 3 and 4)
  fs::remove_all(dir / "parts" / "checkpoint-4");  // as if killed between two checkpoints
  TrainingJob second = tiny_job(dataset, dir / "parts");
  const TrainResult resumed = train_model(second, tiny_settings(8));
  EXPECT_TRUE(resumed.resumed);
  const auto expected = losses(dir / "whole" / "metrics.jsonl");
  const auto actual = losses(dir / "parts" / "metrics.jsonl");
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(actual[i], expected[i]) << "step " << i + 1;
  const auto a = CheckpointTensors::open(dir / "whole" / "checkpoint-8").tensor("model.norm.weight");
  const auto b = CheckpointTensors::open(dir / "parts" / "checkpoint-8").tensor("model.norm.weight");
  EXPECT_TRUE(torch::equal(a, b));
}

// bf16 mixed precision (what CUDA runs by default) works the same way on the CPU: bf16
// parameters and compute, float32 master weights in the optimizer state, losses close to the
// float32 run's, and a resume that restores the master weights exactly.
TEST(Trainer, Bf16MixedPrecisionKeepsFloat32MasterWeights) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  TrainingJob reference = tiny_job(dataset, dir / "fp32");
  train_model(reference, tiny_settings(6));
  TrainSettings t = tiny_settings(6);
  t.precision = Precision::kBf16Mixed;
  TrainingJob mixed = tiny_job(dataset, dir / "bf16");
  train_model(mixed, t);
  const auto expected = losses(dir / "fp32" / "metrics.jsonl");
  const auto actual = losses(dir / "bf16" / "metrics.jsonl");
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 0.02 * expected[i]) << i;

  const SafetensorsFile state = SafetensorsFile::open(dir / "bf16" / "checkpoint-6" / "optimizer.safetensors");
  EXPECT_TRUE(state.contains("master.model.norm.weight"));
  EXPECT_EQ(state.entry("master.model.norm.weight").dtype, DType::kF32);
  const HfCheckpoint saved = load_hf_checkpoint(dir / "bf16" / "checkpoint-6");
  EXPECT_EQ(saved.config.dtype, "bfloat16");
  EXPECT_EQ(saved.tensors.tensor("model.norm.weight").scalar_type(), torch::kBFloat16);
  // The bf16 weights are the master weights rounded.
  EXPECT_TRUE(torch::equal(saved.tensors.tensor("model.norm.weight"),
                           state.tensor("master.model.norm.weight").to(torch::kBFloat16)));

  t.steps = 8;
  TrainingJob resumed = tiny_job(dataset, dir / "bf16");
  EXPECT_TRUE(train_model(resumed, t).resumed);
  EXPECT_EQ(losses(dir / "bf16" / "metrics.jsonl").size(), 8u);
}

}  // namespace svmoe
