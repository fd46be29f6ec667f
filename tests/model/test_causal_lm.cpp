// The dense model against logits computed by Hugging Face transformers 5.17 (tests/data/models,
// made by scripts/make_reference_fixtures.py).
#include "svmoe/model/causal_lm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/model/compat.h"
#include "svmoe/model/initialization.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {

torch::Tensor svmoe_logits(const std::string& name, const torch::Tensor& input_ids) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture(name));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);  // float32, whatever the stored dtype
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(input_ids).logits;
}

}  // namespace

class CausalLMReference : public ::testing::TestWithParam<std::string> {};

TEST_P(CausalLMReference, LogitsMatchTransformersFloat32) {
  const SafetensorsFile expected = SafetensorsFile::open(test::model_fixture(GetParam()) / "expected.safetensors");
  const torch::Tensor input_ids = expected.tensor("input_ids");
  const torch::Tensor logits = svmoe_logits(GetParam(), input_ids);
  const torch::Tensor reference = expected.tensor("logits");
  ASSERT_EQ(logits.sizes(), reference.sizes());
  const double difference = (logits - reference).abs().max().item<double>();
  EXPECT_LT(difference, 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Llama, CausalLMReference,
                         ::testing::Values("llama_mha_untied", "llama_gqa_tied_theta5e5", "llama_legacy_rope_config",
                                           "llama_bf16"));

TEST(CausalLM, IsCausal) {
  // Changing a later token must not change earlier positions' logits.
  const auto a = torch::tensor({{5, 6, 7, 8, 9}}, torch::kInt64);
  const auto b = torch::tensor({{5, 6, 7, 8, 1000}}, torch::kInt64);
  const auto la = svmoe_logits("llama_gqa_tied_theta5e5", a);
  const auto lb = svmoe_logits("llama_gqa_tied_theta5e5", b);
  EXPECT_TRUE(torch::allclose(la.narrow(1, 0, 4), lb.narrow(1, 0, 4)));
  EXPECT_FALSE(torch::allclose(la.narrow(1, 4, 1), lb.narrow(1, 4, 1)));
}

TEST(CausalLM, ParameterNamesAreHuggingFaceKeys) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_gqa_tied_theta5e5"));
  CausalLM model(checkpoint.config);
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, checkpoint.tensors.names());
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.1.self_attn.k_proj.weight"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "lm_head.weight"), names.end());  // tied
  EXPECT_EQ(parameter_count(model->config()), 278336);  // transformers' count (fixtures REPORT.json)
}

TEST(CausalLM, RejectsOutOfVocabularyIds) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model(checkpoint.config);
  EXPECT_THROW(model->forward(torch::tensor({{1, 3000}}, torch::kInt64)), Error);
  // The check the trainer runs on its CPU batches says what it found and where the ids belong.
  const std::string message = test::error_message<FormatError>([] {
    check_token_ids(torch::tensor({{-1, 5}, {7, 2999}}, torch::kInt64), 3000);
  });
  EXPECT_NE(message.find("[-1, 2999]"), std::string::npos) << message;
  EXPECT_NE(message.find("[0, 3000)"), std::string::npos) << message;
  EXPECT_NO_THROW(check_token_ids(torch::tensor({{0, 2999}}, torch::kInt64), 3000));
}

}  // namespace svmoe

namespace svmoe {

namespace {

// Whether the autograd graph behind `output` has a node whose name contains `name`.
bool graph_has_node(const torch::Tensor& output, const std::string& name) {
  std::vector<compat::AutogradNodePtr> pending = {output.grad_fn()};
  std::set<torch::autograd::Node*> seen;
  while (!pending.empty()) {
    const auto node = pending.back();
    pending.pop_back();
    if (!node || !seen.insert(node.get()).second) continue;
    if (node->name().find(name) != std::string::npos) return true;
    for (const auto& edge : node->next_edges()) pending.push_back(edge.function);
  }
  return false;
}

// Every parameter's gradient of a loss over the logits and the router logits, for one batch.
CausalLM model_of(const std::string& fixture) {
  if (fixture == "cartesian") {  // the Mixtral fixture's shape as a CartesianMoE, seeded weights
    ModelConfig config = load_hf_checkpoint(test::model_fixture("mixtral_8e_top2")).config;
    config.architecture = Architecture::kCartesianMoe;
    config.shared_expert_intermediate_size = 8;
    CausalLM model(config);
    initialize_weights(*model, 0.1, 9);
    return model;
  }
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture(fixture));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  return model;
}

std::map<std::string, torch::Tensor> gradients(const std::string& fixture, bool checkpointing, bool routers_only) {
  CausalLM model = model_of(fixture);
  const ModelConfig& config = model->config();
  model->train();
  model->model->activation_checkpointing = checkpointing;
  for (auto& item : model->named_parameters()) {
    item.value().set_requires_grad(!routers_only || item.key().find(".gate.") != std::string::npos);
  }
  torch::manual_seed(5);
  const auto input_ids = torch::randint(0, config.vocab_size, {2, 12}, torch::kInt64);
  const CausalLMOutput out = model->forward(input_ids);
  // The blocks are recomputed exactly when checkpointing is on: their nodes are in the graph.
  EXPECT_EQ(graph_has_node(out.logits, "RecomputedBlock"), checkpointing) << fixture;
  auto loss = out.logits.to(torch::kFloat32).log_softmax(-1).select(-1, 3).mean();
  for (const auto& logits : out.router_logits) loss = loss + logits.softmax(-1).select(-1, 0).mean();
  loss.backward();
  std::map<std::string, torch::Tensor> grads;
  for (const auto& item : model->named_parameters()) {
    if (item.value().grad().defined()) grads[item.key()] = item.value().grad().clone();
  }
  return grads;
}

}  // namespace

// Activation checkpointing recomputes each block in the backward pass: the same gradients for
// every parameter, dense, MoE and CartesianMoE (two router outputs a block), and for the routers
// alone (stage 3, nothing else trains).
TEST(ActivationCheckpointing, GivesTheSameGradients) {
  for (const std::string fixture : {"llama_gqa_tied_theta5e5", "mixtral_8e_top2", "cartesian"}) {
    for (const bool routers_only : {false, true}) {
      if (routers_only && fixture[0] == 'l') continue;
      const auto expected = gradients(fixture, false, routers_only);
      const auto actual = gradients(fixture, true, routers_only);
      ASSERT_EQ(actual.size(), expected.size()) << fixture;
      const std::size_t routers = fixture == "cartesian" ? 4u : 2u;  // 2 layers, a CartesianMoE's 2 routers each
      EXPECT_EQ(expected.size(), routers_only ? routers : expected.size()) << fixture;
      for (const auto& [name, grad] : expected) {
        ASSERT_TRUE(actual.count(name)) << name;
        EXPECT_TRUE(torch::allclose(actual.at(name), grad, 1e-6, 1e-7)) << fixture << " " << name;
      }
    }
  }
}

}  // namespace svmoe
