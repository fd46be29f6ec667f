#include "svmoe/io/parameter_names.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/model/architecture_arithmetic.h"
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

TEST(ParameterNames, AreTheModulesNamesForLlamaMixtralAndQwen2Moe) {
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
  moe.architecture = Architecture::kMixtral;
  moe.num_local_experts = 3;
  moe.num_experts_per_tok = 2;
  ModelConfig qwen = moe;
  qwen.architecture = Architecture::kQwen2Moe;
  qwen.shared_expert_intermediate_size = 12;
  qwen.qkv_bias = true;
  for (const ModelConfig& c : {moe, qwen}) {
    const auto moe_names = parameter_set(c);
    std::size_t expected = 0;  // every name the module has is one of these
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      EXPECT_EQ(moe_names.count(names::router(c, l)), 1u) << names::router(c, l);
      for (std::int64_t e = 0; e < c.num_local_experts; ++e) {
        for (const auto p : {names::FfnProjection::kGate, names::FfnProjection::kUp, names::FfnProjection::kDown}) {
          EXPECT_EQ(moe_names.count(names::expert_ffn(c, l, e, p)), 1u) << names::expert_ffn(c, l, e, p);
        }
      }
      expected += 1 + 3 * c.num_local_experts + 4 + 2;  // router, experts, q/k/v/o, two norms
      if (c.architecture != Architecture::kQwen2Moe) continue;
      for (const auto p : {names::FfnProjection::kGate, names::FfnProjection::kUp, names::FfnProjection::kDown}) {
        EXPECT_EQ(moe_names.count(names::shared_expert_ffn(l, p)), 1u) << names::shared_expert_ffn(l, p);
      }
      EXPECT_EQ(moe_names.count(names::shared_expert_gate(l)), 1u) << names::shared_expert_gate(l);
      for (const auto& bias : names::qkv_biases(l)) EXPECT_EQ(moe_names.count(bias), 1u) << bias;
      expected += 3 + 1 + 3;
    }
    EXPECT_EQ(moe_names.size(), expected + 3) << c.model_type();  // + embeddings, final norm, LM head
    std::int64_t count = 0;
    for (const auto& p : CausalLM(c)->parameters()) count += p.numel();
    EXPECT_EQ(count, parameter_count(c)) << c.model_type();
  }
  ModelConfig cartesian = moe;
  cartesian.architecture = Architecture::kCartesianMoe;
  cartesian.shared_expert_intermediate_size = 6;
  const auto names_of_cartesian = parameter_set(cartesian);
  std::size_t expected = 3;  // embeddings, final norm, LM head
  for (std::int64_t l = 0; l < cartesian.num_hidden_layers; ++l) {
    for (std::int64_t sub = 0; sub < 2; ++sub) {
      EXPECT_EQ(names_of_cartesian.count(names::cartesian_router(l, sub)), 1u) << names::cartesian_router(l, sub);
      for (const auto p : {names::FfnProjection::kGate, names::FfnProjection::kUp, names::FfnProjection::kDown}) {
        for (std::int64_t e = 0; e < cartesian.num_local_experts; ++e) {
          EXPECT_EQ(names_of_cartesian.count(names::cartesian_expert_ffn(l, sub, e, p)), 1u);
        }
        EXPECT_EQ(names_of_cartesian.count(names::cartesian_shared_expert_ffn(l, sub, p)), 1u);
      }
      EXPECT_EQ(names::parse_router(names::cartesian_router(l, sub)), l);
    }
    EXPECT_EQ(names_of_cartesian.count(names::cartesian_norm(l)), 1u) << names::cartesian_norm(l);
    expected += 2 * (1 + 3 * cartesian.num_local_experts + 3) + 1 + 4 + 2;
  }
  EXPECT_EQ(names_of_cartesian.size(), expected);
  std::int64_t count = 0;
  for (const auto& p : CausalLM(cartesian)->parameters()) count += p.numel();
  EXPECT_EQ(count, parameter_count(cartesian));
}

TEST(ParameterNames, ParseWhatTheyWrite) {
  const auto ffn = names::parse_dense_ffn(names::dense_ffn(7, names::FfnProjection::kDown));
  ASSERT_TRUE(ffn);
  EXPECT_EQ(ffn->layer, 7);
  EXPECT_EQ(ffn->projection, names::FfnProjection::kDown);
  for (const Architecture type : {Architecture::kMixtral, Architecture::kQwen2Moe, Architecture::kSoftMoe}) {
    ModelConfig moe;
    moe.architecture = type;
    const auto expert = names::parse_expert_ffn(names::expert_ffn(moe, 3, 5, names::FfnProjection::kUp));
    ASSERT_TRUE(expert) << moe.model_type();
    EXPECT_EQ(expert->layer, 3);
    EXPECT_EQ(expert->expert, 5);
    EXPECT_EQ(expert->projection, names::FfnProjection::kUp);
    EXPECT_EQ(names::parse_router(names::router(moe, 11)), 11) << moe.model_type();
  }
  ModelConfig mixtral;
  mixtral.architecture = Architecture::kMixtral;
  ModelConfig qwen;
  qwen.architecture = Architecture::kQwen2Moe;
  EXPECT_EQ(names::expert_ffn(mixtral, 0, 1, names::FfnProjection::kUp),
            "model.layers.0.block_sparse_moe.experts.1.w3.weight");
  EXPECT_EQ(names::expert_ffn(qwen, 0, 1, names::FfnProjection::kDown),
            "model.layers.0.mlp.experts.1.down_proj.weight");
  EXPECT_EQ(names::router(qwen, 2), "model.layers.2.mlp.gate.weight");
  // Neither the shared expert nor its gate is a router or a routed expert.
  EXPECT_FALSE(names::is_router(names::shared_expert_gate(2)));
  EXPECT_FALSE(names::parse_expert_ffn(names::shared_expert_ffn(2, names::FfnProjection::kGate)));
  EXPECT_FALSE(names::parse_dense_ffn(names::shared_expert_ffn(2, names::FfnProjection::kGate)));
  EXPECT_FALSE(names::parse_dense_ffn("model.layers.x.mlp.gate_proj.weight"));
}

}  // namespace svmoe
