#include "svmoe/train/memory_plan.h"

#include <gtest/gtest.h>

#include "svmoe/io/hf_config.h"
#include "svmoe/model/architecture_arithmetic.h"
#include "test_support.h"

namespace svmoe {

namespace {

ModelConfig paper_base() { return read_model_config(test::model_fixture("llm_jp_3_1_8b_shape")); }

ModelConfig paper_moe() {
  ModelConfig moe = paper_base();
  moe.architecture = Architecture::kMixtral;
  moe.num_local_experts = 8;
  moe.num_experts_per_tok = 2;
  return moe;
}

TrainSettings paper_train(std::int64_t zero_stage) {
  TrainSettings train;
  train.precision = Precision::kBf16Mixed;
  train.micro_batch = 1;
  train.sequence_length = 4096;
  train.zero_stage = zero_stage;
  return train;
}

}  // namespace

// The figures: llm-jp-3-1.8b has 1.87B parameters, the 8-expert MoE 9.27B, whose
// bf16 weights and gradients with float32 master weights and moments take about 148 GB.
TEST(MemoryPlan, ThePapersMoeNeeds148GBOfStates) {
  EXPECT_NEAR(static_cast<double>(parameter_count(paper_base())), 1.87e9, 0.01e9);
  const MemoryPlan whole = plan_memory(paper_moe(), paper_train(0), 8, false);
  EXPECT_NEAR(static_cast<double>(whole.parameters), 9.27e9, 0.01e9);
  EXPECT_NEAR(whole.weights + whole.gradients + whole.optimizer_state, 148.3e9, 0.2e9);
  EXPECT_DOUBLE_EQ(whole.optimizer_state, 12.0 * static_cast<double>(whole.parameters));
  // ZeRO-1 over 8 ranks: an eighth of the optimizer state on each.
  const MemoryPlan sharded = plan_memory(paper_moe(), paper_train(1), 8, false);
  EXPECT_DOUBLE_EQ(sharded.optimizer_state, whole.optimizer_state / 8);
  EXPECT_DOUBLE_EQ(sharded.weights, whole.weights);
  // Stage 3 trains the routers only: 24 blocks x 8 experts x 2048.
  const MemoryPlan routers = plan_memory(paper_moe(), paper_train(0), 1, true);
  EXPECT_EQ(routers.trained_parameters, 24 * 8 * 2048);
  EXPECT_DOUBLE_EQ(routers.activations, whole.activations);
}

// The activation count of docs/training.md, term by term, on a block small enough to add by hand.
TEST(MemoryPlan, ActivationsAsTheFormulaCountsThem) {
  ModelConfig tiny;
  tiny.hidden_size = 4;
  tiny.intermediate_size = 8;
  tiny.num_attention_heads = 2;
  tiny.num_key_value_heads = 1;
  tiny.head_dim = 2;
  tiny.num_hidden_layers = 3;
  tiny.vocab_size = 10;
  // Per token and block: 4h + 3q + 3kv + 4f = 16 + 12 + 6 + 32 = 66 bf16 values and 2 float32
  // log-sum-exps; the ends: 3h bf16 values. The loss: one chunk (all 10 tokens) of 10 logits at
  // 2 + 4 + 2 bytes, and the head's gradient, 10 x 4 values at 4 + 2 bytes.
  const double per_token = 3 * (66 * 2 + 2 * 4) + 3 * 4 * 2;
  const double head = 10 * 4 * (4 + 2);
  EXPECT_DOUBLE_EQ(activation_bytes(tiny, 2, 5, 2), 10 * per_token + 10 * 10 * 8 + head);
  tiny.architecture = Architecture::kMixtral;
  tiny.num_local_experts = 4;
  tiny.num_experts_per_tok = 2;
  // An MoE block: 4h + 3q + 3kv + k(4f + 2h) = 16 + 12 + 6 + 2 x 40, and 2 x 4 router floats.
  const double moe_per_token = 3 * (114 * 2 + (2 + 8) * 4) + 3 * 4 * 2;
  EXPECT_DOUBLE_EQ(activation_bytes(tiny, 1, 1, 2), moe_per_token + 1 * 10 * 8 + head);
  // A CartesianMoE block with shared experts of f_shared = 3: two sub-layers of k(4f + 2h) + 4 f_shared
  // = 92, the norm between (2h = 8): 16 + 12 + 6 + 2 x 92 + 8 = 226, and 2 x 2 x 4 router floats.
  tiny.architecture = Architecture::kCartesianMoe;
  tiny.shared_expert_intermediate_size = 3;
  const double cartesian_per_token = 3 * (226 * 2 + (2 + 16) * 4) + 3 * 4 * 2;
  EXPECT_DOUBLE_EQ(activation_bytes(tiny, 1, 1, 2), cartesian_per_token + 1 * 10 * 8 + head);
  EXPECT_EQ(plan_memory(tiny, TrainSettings{}, 1, true).trained_parameters, 2 * 3 * 4 * 4);  // 2 routers a layer
  // A causal Soft MoE block: all N = 4 experts on every position, N(4f + 2h) = 160: 16 + 12 + 6 + 160
  // = 194; float32: 2 log-sum-exps, 2N router floats and the dispatch weights with their logits,
  // 2NT = 8 at T = 1.
  tiny.architecture = Architecture::kSoftMoe;
  tiny.shared_expert_intermediate_size = 0;
  const double soft_per_token = 3 * (194 * 2 + (2 + 8 + 8) * 4) + 3 * 4 * 2;
  EXPECT_DOUBLE_EQ(activation_bytes(tiny, 1, 1, 2), soft_per_token + 1 * 10 * 8 + head);
}

TEST(MemoryPlan, AdviceNamesTheSettingThatMakesItFit) {
  const double h100 = 80.0 * 0.9 * 1024 * 1024 * 1024;
  TrainSettings train = paper_train(0);
  MemoryPlan plan = plan_memory(paper_moe(), train, 8, false);
  auto advice = memory_advice(plan, paper_moe(), train, false, h100);
  ASSERT_FALSE(advice.empty());
  EXPECT_NE(advice.front().find("train.zero_stage: 1"), std::string::npos) << advice.front();
  train.zero_stage = 1;
  plan = plan_memory(paper_moe(), train, 8, false);
  EXPECT_TRUE(memory_advice(plan, paper_moe(), train, false, h100).empty()) << plan.total() / 1e9;
  // Two micro-sequences: the advice is one a micro-batch, the same global batch.
  train.micro_batch = 2;
  train.grad_accum = 16;
  plan = plan_memory(paper_moe(), train, 8, false);
  advice = memory_advice(plan, paper_moe(), train, false, h100);
  ASSERT_FALSE(advice.empty()) << plan.total() / 1e9;
  EXPECT_NE(advice.back().find("train.micro_batch: 1 and train.grad_accum: 32"), std::string::npos) << advice.back();
  // The dense model on one GPU fits as the paper config trains its experts.
  train = paper_train(0);
  train.micro_batch = 2;
  EXPECT_TRUE(memory_advice(plan_memory(paper_base(), train, 1, false), paper_base(), train, false, h100).empty());
}

}  // namespace svmoe
