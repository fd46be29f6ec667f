#include "svmoe/stages/merge.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// A copy of a fixture whose every weight is changed by `f`.
fs::path changed_copy(const fs::path& source, const fs::path& target,
                      const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  fs::create_directories(target);
  fs::copy_file(source / "config.json", target / "config.json");
  const CheckpointTensors tensors = CheckpointTensors::open(source);
  std::vector<NamedTensor> changed;
  for (const auto& name : tensors.names()) changed.push_back({name, f(tensors.tensor(name))});
  write_safetensors(target / "model.safetensors", changed);
  return target;
}

CausalLMOutput forward(const fs::path& directory, const torch::Tensor& ids) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  torch::NoGradGuard no_grad;
  return model->forward(ids);
}

MergeSettings settings(std::vector<fs::path> experts, const fs::path& output) {
  MergeSettings s;
  s.experts = std::move(experts);
  s.output = output;
  return s;
}

}  // namespace

// SPEC.md §4: merging N copies of one dense model gives an MoE whose logits equal the dense
// model's, whatever the routers.
TEST(Merge, CopiesOfOneModelGiveItsLogitsBack) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_gqa_tied_theta5e5");
  MergeSettings s = settings({dense, dense, dense, dense}, dir / "moe");
  s.router_init_std = 1.0;  // strong, random routing
  const MergeResult result = run_merge(s, RuntimeSettings{});
  EXPECT_EQ(result.config.num_local_experts, 4);
  const auto ids = SafetensorsFile::open(dense / "expected.safetensors").tensor("input_ids");
  const CausalLMOutput moe = forward(dir / "moe", ids);
  EXPECT_LT((moe.logits - forward(dense, ids).logits).abs().max().item<double>(), 1e-5);
  ASSERT_EQ(moe.router_logits.size(), 2u);
  EXPECT_GT(moe.router_logits[0].std().item<double>(), 0.1);  // the routers are not trivial
}

// The output holds exactly what the rule says, computed here independently of the stage.
TEST(Merge, TensorsFollowTheBtxRule) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  torch::manual_seed(0);
  const fs::path b = changed_copy(a, dir / "b", [](const torch::Tensor& t) { return t * 2 + torch::randn_like(t); });
  const fs::path c = changed_copy(a, dir / "c", [](const torch::Tensor& t) { return -t; });
  MergeSettings s = settings({a, b, c}, dir / "moe");
  s.max_shard_mb = 1;  // sharded output
  run_merge(s, RuntimeSettings{});
  const CheckpointTensors out = CheckpointTensors::open(dir / "moe");
  const std::vector<CheckpointTensors> in = {CheckpointTensors::open(a), CheckpointTensors::open(b),
                                             CheckpointTensors::open(c)};
  for (const std::string name : {"model.embed_tokens.weight", "model.layers.1.self_attn.o_proj.weight",
                                 "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"}) {
    const auto mean = (in[0].tensor(name) + in[1].tensor(name) + in[2].tensor(name)) / 3.0;
    EXPECT_TRUE(torch::allclose(out.tensor(name), mean, 1e-6, 1e-6)) << name;
  }
  for (int e = 0; e < 3; ++e) {
    const std::string expert = "model.layers.1.block_sparse_moe.experts." + std::to_string(e);
    EXPECT_TRUE(torch::equal(out.tensor(expert + ".w1.weight"), in[e].tensor("model.layers.1.mlp.gate_proj.weight")));
    EXPECT_TRUE(torch::equal(out.tensor(expert + ".w2.weight"), in[e].tensor("model.layers.1.mlp.down_proj.weight")));
    EXPECT_TRUE(torch::equal(out.tensor(expert + ".w3.weight"), in[e].tensor("model.layers.1.mlp.up_proj.weight")));
  }
  const auto router = out.tensor("model.layers.0.block_sparse_moe.gate.weight");
  EXPECT_EQ(router.sizes(), (std::vector<std::int64_t>{3, 64}));
  EXPECT_NEAR(router.std().item<double>(), 0.02, 0.005);  // initializer_range
  EXPECT_FALSE(out.contains("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(fs::exists(dir / "moe" / "model.safetensors.index.json"));
  const auto config = nlohmann::json::parse(read_text_file(dir / "moe" / "config.json"));
  EXPECT_EQ(config["model_type"], "mixtral");
  EXPECT_EQ(config["num_local_experts"], 3);
  EXPECT_EQ(config["num_experts_per_tok"], 2);
  EXPECT_EQ(config["router_aux_loss_coef"], 0.01);
  EXPECT_TRUE(config["sliding_window"].is_null());
}

TEST(Merge, Bf16ExpertsAreAveragedInFloat32AndStayBf16) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_bf16");
  const fs::path b = changed_copy(
      a, dir / "b", [](const torch::Tensor& t) { return (t.to(torch::kFloat32) + 0.001).to(torch::kBFloat16); });
  run_merge(settings({a, b}, dir / "moe"), RuntimeSettings{});
  const CheckpointTensors out = CheckpointTensors::open(dir / "moe");
  const auto x = CheckpointTensors::open(a).tensor("model.norm.weight").to(torch::kFloat32);
  const auto y = CheckpointTensors::open(b).tensor("model.norm.weight").to(torch::kFloat32);
  EXPECT_EQ(out.tensor("model.norm.weight").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(out.tensor("model.norm.weight"), ((x + y) / 2).to(torch::kBFloat16)));
  EXPECT_EQ(out.tensor("model.layers.0.block_sparse_moe.gate.weight").scalar_type(), torch::kBFloat16);
}

TEST(Merge, RoutersDependOnTheSeedOnly) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  RuntimeSettings runtime;
  run_merge(settings({a, a}, dir / "one"), runtime);
  run_merge(settings({a, a}, dir / "two"), runtime);
  runtime.seed = 99;
  run_merge(settings({a, a}, dir / "three"), runtime);
  const std::string router = "model.layers.1.block_sparse_moe.gate.weight";
  const auto one = CheckpointTensors::open(dir / "one").tensor(router);
  EXPECT_TRUE(torch::equal(one, CheckpointTensors::open(dir / "two").tensor(router)));
  EXPECT_FALSE(torch::equal(one, CheckpointTensors::open(dir / "three").tensor(router)));
}

TEST(Merge, ExpertsThatDisagreeAreNamed) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  fs::copy(a, dir / "other_vocab");
  auto config = nlohmann::json::parse(read_text_file(dir / "other_vocab" / "config.json"));
  config["vocab_size"] = 4000;
  write_file_atomically(dir / "other_vocab" / "config.json", config.dump());
  try {
    run_merge(settings({a, dir / "other_vocab"}, dir / "moe"), RuntimeSettings{});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"vocab_size\": 3000 in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("4000"), std::string::npos) << e.what();
  }
  fs::copy(a, dir / "other_tokenizer");
  fs::copy_file(test::data_dir() / "tokenizers" / "bpe" / "tokenizer.json", dir / "other_tokenizer" / "tokenizer.json");
  const std::string message = test::error_message<ConfigError>([&] {
    run_merge(settings({a, dir / "other_tokenizer"}, dir / "moe"), RuntimeSettings{});
  });
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  EXPECT_THROW(run_merge(settings({a, dir / "missing"}, dir / "moe"), RuntimeSettings{}), IoError);
  EXPECT_THROW(run_merge(settings({a, test::model_fixture("mixtral_8e_top2")}, dir / "moe"), RuntimeSettings{}),
               UnsupportedError);
  EXPECT_FALSE(fs::exists(dir / "moe"));
}

}  // namespace svmoe
