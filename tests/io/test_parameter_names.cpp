#include "svmoe/io/parameter_names.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/model/causal_lm.h"

namespace svmoe {
namespace names = parameter_names;

namespace {

std::set<std::string> parameter_set(const ModelConfig& config) {
  CausalLM model(config);
  std::set<std::string> out;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) out.insert(item.key());
  return out;
}

}  // namespace

TEST(ParameterNames, AreTheModulesNamesForLlamaAndMixtral) {
  ModelConfig dense;
  dense.vocab_size = 32;
  dense.hidden_size = 8;
  dense.intermediate_size = 12;
  dense.num_hidden_layers = 2;
  dense.num_attention_heads = 2;
  dense.num_key_value_heads = 2;
  dense.head_dim = 4;
  dense.max_position_embeddings = 16;
  const auto dense_names = parameter_set(dense);
  EXPECT_EQ(dense_names.count(names::kEmbedTokens), 1u);
  for (std::int64_t l = 0; l < dense.num_hidden_layers; ++l) {
    for (const auto p : {names::FfnProjection::kGate, names::FfnProjection::kUp, names::FfnProjection::kDown}) {
      EXPECT_EQ(dense_names.count(names::dense_ffn(l, p)), 1u) << names::dense_ffn(l, p);
    }
  }
  ModelConfig moe = dense;
  moe.model_type = "mixtral";
  moe.num_local_experts = 3;
  moe.num_experts_per_tok = 2;
  const auto moe_names = parameter_set(moe);
  for (std::int64_t l = 0; l < moe.num_hidden_layers; ++l) {
    EXPECT_EQ(moe_names.count(names::router(l)), 1u) << names::router(l);
    for (std::int64_t e = 0; e < moe.num_local_experts; ++e) {
      for (const auto p : {names::FfnProjection::kGate, names::FfnProjection::kUp, names::FfnProjection::kDown}) {
        EXPECT_EQ(moe_names.count(names::expert_ffn(l, e, p)), 1u) << names::expert_ffn(l, e, p);
      }
    }
  }
}

TEST(ParameterNames, ParseWhatTheyWrite) {
  const auto ffn = names::parse_dense_ffn(names::dense_ffn(7, names::FfnProjection::kDown));
  ASSERT_TRUE(ffn);
  EXPECT_EQ(ffn->layer, 7);
  EXPECT_EQ(ffn->projection, names::FfnProjection::kDown);
  const auto expert = names::parse_expert_ffn(names::expert_ffn(3, 5, names::FfnProjection::kUp));
  ASSERT_TRUE(expert);
  EXPECT_EQ(expert->layer, 3);
  EXPECT_EQ(expert->expert, 5);
  EXPECT_EQ(expert->projection, names::FfnProjection::kUp);
  EXPECT_EQ(names::expert_ffn(0, 1, names::FfnProjection::kUp), "model.layers.0.block_sparse_moe.experts.1.w3.weight");
  EXPECT_EQ(names::parse_router(names::router(11)), 11);
  EXPECT_FALSE(names::is_router(names::fused_router(11)));
  EXPECT_FALSE(names::parse_dense_ffn("model.layers.x.mlp.gate_proj.weight"));
}

}  // namespace svmoe
