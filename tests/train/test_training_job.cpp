#include "svmoe/train/training_job.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

TEST(TrainingJob, PretrainedLoadsTheWeightsAndRandomInitialisesThem) {
  test::ScratchDir dir;
  const auto fixture = test::model_fixture("llama_mha_untied");
  DatasetShards shards;
  shards.train = {dir / "subdomain_0" / "train"};
  shards.tokenizer = dir.path();
  RuntimeSettings runtime;
  const TrainingJob loaded = training_job(fixture, ModelInit::kPretrained, shards, dir / "run", runtime, {});
  const HfCheckpoint checkpoint = load_hf_checkpoint(fixture);
  EXPECT_TRUE(torch::equal(loaded.model->model->embed_tokens->weight,
                           checkpoint.tensors.tensor("model.embed_tokens.weight").to(torch::kFloat32)));
  const TrainingJob fresh = training_job(fixture, ModelInit::kRandom, shards, dir / "run", runtime, {});
  EXPECT_FALSE(torch::equal(fresh.model->model->embed_tokens->weight, loaded.model->model->embed_tokens->weight));
  EXPECT_EQ(fresh.train_sources.size(), 1u);
  EXPECT_EQ(fresh.output, dir / "run");
}

TEST(TrainingJob, ADatasetWithMoreTokensThanTheModelIsRefused) {
  test::ScratchDir dir;
  DatasetShards shards;
  shards.vocab_size = 1 << 20;
  const std::string message = test::error_message<ConfigError>([&] {
    training_job(test::model_fixture("llama_mha_untied"), ModelInit::kPretrained, shards, dir / "run",
                 RuntimeSettings{}, {});
  });
  EXPECT_NE(message.find("the dataset's tokenizer has 1048576 tokens"), std::string::npos) << message;
}

}  // namespace svmoe
