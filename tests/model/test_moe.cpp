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

namespace svmoe {

TEST(AuxFreeBalancing, ZeroBiasRoutesAsPlainTopK) {
  torch::manual_seed(4);
  const auto logits = torch::randn({40, 6});
  const Routing plain = route_top_k(logits, 2);
  const Routing biased = route_top_k(logits, 2, torch::zeros({6}));
  EXPECT_TRUE(torch::equal(plain.experts, biased.experts));
  EXPECT_TRUE(torch::allclose(plain.weights, biased.weights));
}

TEST(AuxFreeBalancing, BiasChangesTheChoiceButNotTheWeights) {
  const auto logits = torch::tensor({{2.0f, 1.0f, 0.0f}});
  const Routing routing = route_top_k(logits, 1, torch::tensor({0.0f, 0.0f, 1.0f}));
  EXPECT_EQ(routing.experts.item<std::int64_t>(), 2);    // p_2 + 1 is the largest
  EXPECT_FLOAT_EQ(routing.weights.item<float>(), 1.0f);  // one expert: all its weight
  const Routing two = route_top_k(logits, 2, torch::tensor({0.0f, 0.0f, 1.0f}));
  const auto p = torch::softmax(logits, -1)[0];
  // Experts 2 and 0, weighted by their unbiased probabilities.
  EXPECT_NEAR(two.weights[0][0].item<float>(), (p[2] / (p[2] + p[0])).item<float>(), 1e-6);
}

TEST(AuxFreeBalancing, UpdatesEvenTheLoadWithoutALoss) {
  torch::manual_seed(5);
  // A router that prefers expert 0 for every token.
  auto logits = torch::randn({512, 4}) * 0.5;
  logits.select(1, 0).add_(1.0);
  auto bias = torch::zeros({4});
  auto spread = [&] {
    const auto load = expert_load(route_top_k(logits, 1, bias), 4).to(torch::kFloat32);
    return (load.max() - load.min()).item<float>();
  };
  const float before = spread();
  for (int step = 0; step < 200; ++step)
    update_selection_bias(bias, expert_load(route_top_k(logits, 1, bias), 4), 0.01);
  EXPECT_LT(spread(), before / 4) << bias;
  EXPECT_LT(bias[0].item<float>(), 0.0f);  // the overloaded expert was pushed down
}

TEST(AuxFreeBalancing, BiasIsSavedBesideTheWeightsAndRestored) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("mixtral_8e_top2"));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  auto* moe = model->model->layers[1]->as<DecoderLayer>()->block_sparse_moe.get();
  moe->selection_bias.copy_(torch::arange(8, torch::kFloat32) * 0.01);
  SaveOptions options;
  options.svmoe_state = named_buffers(*model);
  save_hf_checkpoint(dir / "out", checkpoint.config, named_tensors(*model), options, checkpoint.raw_config);
  // The Hugging Face weights stay as transformers expects them.
  EXPECT_EQ(CheckpointTensors::open(dir / "out").names(), checkpoint.tensors.names());
  CausalLM again(checkpoint.config);
  load_weights(*again, load_hf_checkpoint(dir / "out"));
  EXPECT_TRUE(
      torch::equal(again->model->layers[1]->as<DecoderLayer>()->block_sparse_moe->selection_bias, moe->selection_bias));
}

}  // namespace svmoe
