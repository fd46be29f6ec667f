// The dense model against logits computed by Hugging Face transformers 5.17 (tests/data/models,
// made by scripts/make_reference_fixtures.py).
#include "svmoe/model/causal_lm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
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
  EXPECT_EQ(model->config().num_parameters(), 278336);  // transformers' count (fixtures REPORT.json)
}

TEST(CausalLM, RejectsOutOfVocabularyIds) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model(checkpoint.config);
  EXPECT_THROW(model->forward(torch::tensor({{1, 3000}}, torch::kInt64)), Error);
}

}  // namespace svmoe
