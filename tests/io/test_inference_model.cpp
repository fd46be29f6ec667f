#include "svmoe/io/inference_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/model/moe.h"
#include "test_support.h"

namespace svmoe {

TEST(InferenceModel, LoadsInEvalModeInTheAskedOrTheCheckpointsDtype) {
  const auto fixture = test::model_fixture("llama_bf16");
  CausalLM as_float = load_model_for_inference(fixture, {torch::kCPU});
  EXPECT_FALSE(as_float->is_training());
  EXPECT_EQ(as_float->parameters().front().scalar_type(), torch::kFloat32);
  CausalLM as_stored = load_model_for_inference(fixture, {torch::kCPU, std::nullopt});
  EXPECT_EQ(as_stored->parameters().front().scalar_type(), torch::kBFloat16);  // config.json says bfloat16
  // The same weights: bf16 values are exact in float32.
  EXPECT_TRUE(torch::equal(as_float->parameters().front(), as_stored->parameters().front().to(torch::kFloat32)));
}

TEST(InferenceModel, SetsTheExpertPathOnEveryMoeBlock) {
  CausalLM model = load_model_for_inference(test::model_fixture("mixtral_8e_top2"),
                                            {torch::kCPU, torch::kFloat32, ExpertPath::kLoop});
  int blocks = 0;
  for (const auto& module : model->modules(/*include_self=*/true)) {
    if (const auto* moe = module->as<SparseMoeBlockImpl>()) {
      EXPECT_EQ(moe->expert_path, ExpertPath::kLoop);
      ++blocks;
    }
  }
  EXPECT_EQ(blocks, model->config().num_hidden_layers);
}

}  // namespace svmoe
