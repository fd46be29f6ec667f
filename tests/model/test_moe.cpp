// The Mixtral model against transformers 5.17 (tests/data/models/mixtral_*).
#include "svmoe/model/moe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

CausalLMOutput run(const fs::path& directory, const torch::Tensor& input_ids) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(input_ids);
}

}  // namespace

class MoeReference : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeReference, LogitsAndRouterLogitsMatchTransformers) {
  const fs::path directory = test::model_fixture(GetParam());
  const SafetensorsFile expected = SafetensorsFile::open(directory / "expected.safetensors");
  const CausalLMOutput output = run(directory, expected.tensor("input_ids"));
  EXPECT_LT((output.logits - expected.tensor("logits")).abs().max().item<double>(), 1e-4);
  ASSERT_EQ(output.router_logits.size(), 2u);
  for (std::size_t l = 0; l < 2; ++l) {
    const auto reference = expected.tensor("router_logits." + std::to_string(l));
    ASSERT_EQ(output.router_logits[l].sizes(), reference.sizes());
    EXPECT_LT((output.router_logits[l] - reference).abs().max().item<double>(), 1e-4) << l;
  }
}

INSTANTIATE_TEST_SUITE_P(Mixtral, MoeReference, ::testing::Values("mixtral_8e_top2", "mixtral_4e_top1_gqa"));

TEST(Moe, RoutingWeightsSumToOneOverTheTopK) {
  torch::manual_seed(3);
  const auto logits = torch::randn({50, 8});
  const Routing routing = route_top_k(logits, 2);
  EXPECT_TRUE(torch::allclose(routing.weights.sum(-1), torch::ones({50})));
  EXPECT_TRUE(torch::equal(routing.experts.select(1, 0), logits.argmax(-1)));
  EXPECT_TRUE((routing.weights.select(1, 0) >= routing.weights.select(1, 1)).all().item<bool>());
}

TEST(Moe, TopOneRoutesAllWeightToOneExpert) {
  const auto routing = route_top_k(torch::randn({10, 4}), 1);
  EXPECT_TRUE(torch::allclose(routing.weights, torch::ones({10, 1})));
}

TEST(Moe, ReadsTheFusedExpertLayout) {
  // Rewrite the classic fixture in the fused per-layer layout and check the same logits.
  test::ScratchDir dir;
  const fs::path source = test::model_fixture("mixtral_8e_top2");
  const CheckpointTensors classic = CheckpointTensors::open(source);
  std::vector<NamedTensor> fused;
  for (const auto& name : classic.names()) {
    if (name.find("block_sparse_moe") == std::string::npos) fused.push_back({name, classic.tensor(name)});
  }
  for (int l = 0; l < 2; ++l) {
    const std::string layer = "model.layers." + std::to_string(l);
    std::vector<torch::Tensor> gate_up, down;
    for (int e = 0; e < 8; ++e) {
      const std::string expert = layer + ".block_sparse_moe.experts." + std::to_string(e);
      gate_up.push_back(torch::cat({classic.tensor(expert + ".w1.weight"), classic.tensor(expert + ".w3.weight")}, 0));
      down.push_back(classic.tensor(expert + ".w2.weight"));
    }
    fused.push_back({layer + ".mlp.experts.gate_up_proj", torch::stack(gate_up)});  // [N, 2f, h]
    fused.push_back({layer + ".mlp.experts.down_proj", torch::stack(down)});        // [N, h, f]
    fused.push_back({layer + ".mlp.gate.weight", classic.tensor(layer + ".block_sparse_moe.gate.weight")});
  }
  fs::create_directories(dir / "fused");
  fs::copy_file(source / "config.json", dir / "fused" / "config.json");
  write_safetensors(dir / "fused" / "model.safetensors", fused);
  const auto ids = SafetensorsFile::open(source / "expected.safetensors").tensor("input_ids");
  EXPECT_TRUE(torch::equal(run(dir / "fused", ids).logits, run(source, ids).logits));
}

TEST(Moe, SavesTheClassicLayoutBitIdentically) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("mixtral_4e_top1_gqa"));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  save_hf_checkpoint(dir / "out", checkpoint.config, named_tensors(*model), {}, checkpoint.raw_config);
  const CheckpointTensors written = CheckpointTensors::open(dir / "out");
  ASSERT_EQ(written.names(), checkpoint.tensors.names());
  for (const auto& name : written.names())
    EXPECT_TRUE(torch::equal(written.tensor(name), checkpoint.tensors.tensor(name))) << name;
  const auto config = nlohmann::json::parse(read_text_file(dir / "out" / "config.json"));
  EXPECT_EQ(config["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(config["num_local_experts"], 4);
  EXPECT_EQ(config["num_experts_per_tok"], 1);
}

}  // namespace svmoe
