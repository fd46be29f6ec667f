// The Mixtral model against transformers 5.17 (tests/data/models/mixtral_*).
#include "svmoe/model/moe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/model/compat.h"
#include "svmoe/model/initialization.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

CausalLMOutput run(const fs::path& directory, const torch::Tensor& input_ids, ExpertPath path = ExpertPath::kAuto) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  set_expert_path(*model, path);
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(input_ids);
}

}  // namespace

class MoeReference : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeReference, LogitsAndRouterLogitsMatchTransformers) {
  const fs::path directory = test::model_fixture(GetParam());
  const SafetensorsFile expected = SafetensorsFile::open(directory / "expected.safetensors");
  const CausalLMOutput output = run(directory, expected.tensor("input_ids"), ExpertPath::kLoop);
  EXPECT_LT((output.logits - expected.tensor("logits")).abs().max().item<double>(), 1e-4);
  ASSERT_EQ(output.router_logits.size(), 2u);
  for (std::size_t l = 0; l < 2; ++l) {
    const auto reference = expected.tensor("router_logits." + std::to_string(l));
    ASSERT_EQ(output.router_logits[l].sizes(), reference.sizes());
    EXPECT_LT((output.router_logits[l] - reference).abs().max().item<double>(), 1e-4) << l;
  }
}

TEST_P(MoeReference, GroupedExpertPathMatchesTransformers) {
  const fs::path directory = test::model_fixture(GetParam());
  const SafetensorsFile expected = SafetensorsFile::open(directory / "expected.safetensors");
  const CausalLMOutput output = run(directory, expected.tensor("input_ids"), ExpertPath::kGrouped);
  EXPECT_LT((output.logits - expected.tensor("logits")).abs().max().item<double>(), 1e-4);
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

TEST(Moe, GroupedProductMultipliesEachGroupOfRowsByItsMatrix) {
  torch::manual_seed(6);
  const auto a = torch::randn({7, 4});
  const auto b = torch::randn({3, 4, 5});
  const auto offsets = torch::tensor({2, 2, 7}, torch::kInt32);  // group 1 is empty
  const auto product = compat::grouped_mm(a, b, offsets);
  ASSERT_EQ(product.sizes(), (std::vector<std::int64_t>{7, 5}));
  EXPECT_TRUE(torch::allclose(product.narrow(0, 0, 2), a.narrow(0, 0, 2).matmul(b[0])));
  EXPECT_TRUE(torch::allclose(product.narrow(0, 2, 5), a.narrow(0, 2, 5).matmul(b[2])));
}

// LibTorch 2.14 has at::_grouped_mm on the CPU: there `auto` takes the kernel (and the path
// tests below compare it with the loop); older versions take one matmul per group.
TEST(Moe, TheCpuGroupedKernelIsUsedWhereLibTorchHasIt) {
  const auto a = torch::randn({7, 8});
  const auto b = torch::randn({3, 8, 16});
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 14)
  EXPECT_TRUE(compat::has_grouped_mm_kernel(a, b));
  EXPECT_TRUE(compat::has_grouped_mm_kernel(a.to(torch::kBFloat16), b.to(torch::kBFloat16)));
  EXPECT_FALSE(compat::has_grouped_mm_kernel(a.to(torch::kFloat64), b.to(torch::kFloat64)));
  EXPECT_FALSE(compat::has_grouped_mm_kernel(torch::randn({7, 5}), torch::randn({3, 5, 16})));  // 20-byte rows
  // The weight gradient's 2-D x 2-D form, with an empty group, through the kernel.
  const auto g = torch::randn({7, 16});
  const auto offsets = torch::tensor({2, 2, 7}, torch::kInt32);
  const auto w = compat::grouped_mm_weight_grad(a, g, offsets);
  EXPECT_TRUE(torch::allclose(w[0], a.narrow(0, 0, 2).t().matmul(g.narrow(0, 0, 2)), 1e-5, 1e-6));
  EXPECT_EQ(w[1].abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(w[2], a.narrow(0, 2, 5).t().matmul(g.narrow(0, 2, 5)), 1e-5, 1e-6));
#elif TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 8)
  EXPECT_FALSE(compat::has_grouped_mm_kernel(a, b));
#else
  GTEST_SKIP() << "LibTorch 2.8-2.13: whether the CPU has the kernel is probed at run time";
#endif
}

namespace {

ModelConfig small_moe_config() {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_local_experts = 5;
  c.num_experts_per_tok = 2;
  return c;
}

struct ExpertPathRun {
  torch::Tensor output, input_grad;
  std::vector<torch::Tensor> weight_grads;  // every parameter's gradient, in parameters() order
};

// Copies of the gradients: zero_grad() zeroes them in place on LibTorch 1.13.
ExpertPathRun run_expert_path(SparseMoeBlock& block, const torch::Tensor& input, const torch::Tensor& probe,
                              ExpertPath path) {
  block->zero_grad();
  block->expert_path = path;
  const auto x = input.detach().clone().requires_grad_(true);
  const auto output = block->forward(x).hidden;
  (output * probe).sum().backward();
  ExpertPathRun run{output.detach(), x.grad(), {}};
  for (const auto& p : block->parameters())
    run.weight_grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return run;
}

}  // namespace

TEST(Moe, GroupedExpertPathMatchesTheLoopInValueAndGradients) {
  torch::manual_seed(7);
  SparseMoeBlock block(small_moe_config());
  // Expert 4 is never chosen: its group is empty, and its weights get no gradient on either path.
  block->selection_bias[4] = -10.0;
  const auto input = torch::randn({3, 11, 16});
  const auto probe = torch::randn({3, 11, 16});
  const ExpertPathRun loop = run_expert_path(block, input, probe, ExpertPath::kLoop);
  const ExpertPathRun grouped = run_expert_path(block, input, probe, ExpertPath::kGrouped);
  EXPECT_TRUE(torch::allclose(grouped.output, loop.output, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(grouped.input_grad, loop.input_grad, 1e-5, 1e-6));
  ASSERT_EQ(grouped.weight_grads.size(), loop.weight_grads.size());
  for (std::size_t i = 0; i < loop.weight_grads.size(); ++i)
    EXPECT_TRUE(torch::allclose(grouped.weight_grads[i], loop.weight_grads[i], 1e-5, 1e-6)) << i;
  const auto idle = block->experts[4]->as<Expert>()->w1->weight.grad();
  EXPECT_TRUE(!idle.defined() || idle.abs().max().item<float>() == 0.0f);
}

// Stage 3 trains the routers alone: with frozen experts the grouped path still carries the
// gradient to the router and the input, as the loop does, and gives the experts none.
TEST(Moe, GroupedExpertPathWithFrozenExpertsMatchesTheLoop) {
  torch::manual_seed(9);
  SparseMoeBlock block(small_moe_config());
  for (auto& item : block->named_parameters()) item.value().set_requires_grad(item.key().rfind("gate.", 0) == 0);
  const auto input = torch::randn({2, 7, 16});
  const auto probe = torch::randn({2, 7, 16});
  const ExpertPathRun loop = run_expert_path(block, input, probe, ExpertPath::kLoop);
  const ExpertPathRun grouped = run_expert_path(block, input, probe, ExpertPath::kGrouped);
  EXPECT_TRUE(torch::allclose(grouped.input_grad, loop.input_grad, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(block->gate->weight.grad(), loop.weight_grads[0], 1e-5, 1e-6));
  EXPECT_FALSE(block->experts[0]->as<Expert>()->w1->weight.grad().defined());
}

TEST(Moe, GroupedExpertPathMatchesTheLoopOnCudaInBfloat16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU: this check runs on the GPU machine";
  torch::manual_seed(8);
  ModelConfig c = small_moe_config();
  c.hidden_size = 256;  // sizes at which at::_grouped_mm's strides are allowed (multiples of 8)
  c.intermediate_size = 512;
  c.num_local_experts = 8;
  SparseMoeBlock block(c);
  block->to(torch::kCUDA, torch::kBFloat16);
  const auto options = torch::dtype(torch::kBFloat16).device(torch::kCUDA);
  const auto input = torch::randn({4, 256, 256}, options);
  const auto probe = torch::randn({4, 256, 256}, options);
  const ExpertPathRun loop = run_expert_path(block, input, probe, ExpertPath::kLoop);
  const ExpertPathRun grouped = run_expert_path(block, input, probe, ExpertPath::kGrouped);
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a.to(torch::kFloat32) - b.to(torch::kFloat32)).norm() / b.to(torch::kFloat32).norm()).item<double>();
  };
  EXPECT_LT(relative(grouped.output, loop.output), 1e-2);
  EXPECT_LT(relative(grouped.input_grad, loop.input_grad), 1e-2);
  for (std::size_t i = 0; i < loop.weight_grads.size(); ++i)
    EXPECT_LT(relative(grouped.weight_grads[i], loop.weight_grads[i]), 1e-2) << i;
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

namespace svmoe {

// train_router.detach_router_inputs: the same router logits, but router 0's gradient comes from
// its own layer's term only; without it, later layers' terms reach router 0 through the
// residual stream (the paper's loss under autograd).
TEST(Moe, DetachedRouterInputsKeepEachRoutersGradientToItsOwnTerm) {
  const fs::path directory = test::model_fixture("mixtral_8e_top2");
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  for (auto& item : model->named_parameters()) {
    item.value().set_requires_grad(item.key().find("block_sparse_moe.gate.") != std::string::npos);
  }
  const auto ids = SafetensorsFile::open(directory / "expected.safetensors").tensor("input_ids");
  torch::Tensor gate0;
  for (auto& item : model->named_parameters()) {
    if (item.key().find("layers.0.block_sparse_moe.gate.") != std::string::npos) gate0 = item.value();
  }
  ASSERT_TRUE(gate0.defined());
  // d(term of `layers`)/d(router 0), each term a smooth function of that layer's logits.
  auto router0_gradient = [&](bool detach, bool all_layers, std::vector<torch::Tensor>* logits_out = nullptr) {
    set_detach_router_inputs(*model, detach);
    if (gate0.grad().defined()) gate0.mutable_grad() = torch::Tensor();
    std::vector<torch::Tensor> router_logits;
    model->model->forward(ids, router_logits);
    auto loss = torch::zeros({});
    for (std::size_t l = 0; l < (all_layers ? router_logits.size() : 1); ++l) {
      loss = loss + torch::log_softmax(router_logits[l], -1).select(1, static_cast<std::int64_t>(l % 8)).sum();
    }
    loss.backward();
    if (logits_out) *logits_out = router_logits;
    return gate0.grad().clone();
  };
  std::vector<torch::Tensor> attached_logits, detached_logits;
  const auto own_term = router0_gradient(/*detach=*/true, /*all_layers=*/false);
  const auto detached = router0_gradient(true, true, &detached_logits);
  const auto attached = router0_gradient(false, true, &attached_logits);
  EXPECT_TRUE(torch::allclose(detached, own_term, 1e-6, 1e-7));
  EXPECT_GT((attached - own_term).abs().max().item<double>(), 1e-4);  // later terms reach router 0
  ASSERT_EQ(attached_logits.size(), detached_logits.size());
  for (std::size_t l = 0; l < attached_logits.size(); ++l) {
    EXPECT_TRUE(torch::equal(attached_logits[l].detach(), detached_logits[l].detach())) << l;
  }
  set_detach_router_inputs(*model, false);
}

// The causal Soft MoE (docs/moe.md).
namespace {

ModelConfig soft_moe_config() {
  ModelConfig c = load_hf_checkpoint(test::model_fixture("llama_mha_untied")).config;
  c.architecture = Architecture::kSoftMoe;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  return c;
}

}  // namespace

TEST(SoftMoe, DispatchMixesOnlyThePrefixAndEachRowSumsToOne) {
  torch::manual_seed(0);
  const auto dispatch = causal_soft_dispatch(torch::randn({2, 6, 3}) * 3);  // [B, S, T, T]
  ASSERT_EQ(dispatch.sizes(), (std::vector<std::int64_t>{2, 3, 6, 6}));
  EXPECT_TRUE(torch::equal(dispatch.triu(1), torch::zeros_like(dispatch)));  // u > t: exactly 0
  EXPECT_TRUE(torch::allclose(dispatch.sum(-1), torch::ones({2, 3, 6})));
  EXPECT_TRUE(torch::equal(dispatch.select(2, 0).select(2, 0), torch::ones({2, 3})));  // t = 0 sees itself
}

// With the identity as dispatch (each slot of position t is x_t), the Soft MoE is the per-token
// mixture sum_s softmax_s(L_{t,s}) expert_s(x_t).
TEST(SoftMoe, IdentityDispatchIsThePerTokenMixtureOfExperts) {
  torch::manual_seed(1);
  torch::nn::ModuleList experts;
  for (int e = 0; e < 3; ++e) experts->push_back(Expert(8, 16));
  const auto x = torch::randn({2, 5, 8});
  const auto combine = torch::softmax(torch::randn({2, 5, 3}), -1);
  const auto identity = torch::eye(5).expand({2, 3, 5, 5});
  torch::NoGradGuard no_grad;
  const auto mixed = soft_moe_mixture(x, identity, combine, experts);
  auto expected = torch::zeros_like(x);
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 5; ++t) {
      for (int e = 0; e < 3; ++e) {
        expected[b][t] += combine[b][t][e] * experts[e]->as<Expert>()->forward(x[b][t]);
      }
    }
  }
  EXPECT_TRUE(torch::allclose(mixed, expected, 1e-5, 1e-6));
}

// A decoder stays causal: the logits at t do not change, to the bit, when tokens after t do.
TEST(SoftMoe, LogitsAtTDoNotDependOnLaterTokens) {
  const ModelConfig config = soft_moe_config();
  CausalLM model(config);
  initialize_weights(*model, 0.2, 5);  // large weights: routing far from uniform
  model->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  const auto ids = torch::randint(0, config.vocab_size, {2, 12});
  auto changed = ids.clone();
  changed.narrow(1, 7, 5).copy_(torch::randint(0, config.vocab_size, {2, 5}));
  const auto a = model->forward(ids), b = model->forward(changed);
  EXPECT_TRUE(torch::equal(a.logits.narrow(1, 0, 7), b.logits.narrow(1, 0, 7)));
  EXPECT_FALSE(torch::equal(a.logits.narrow(1, 7, 5), b.logits.narrow(1, 7, 5)));
  ASSERT_EQ(a.router_logits.size(), 2u);
  EXPECT_EQ(a.router_logits[0].sizes(), (std::vector<std::int64_t>{24, 4}));
}

namespace {

ModelConfig shared_expert_config() {
  ModelConfig c = small_moe_config();
  c.architecture = Architecture::kQwen2Moe;
  c.shared_expert_intermediate_size = 20;
  return c;
}

// The same router and routed experts as `block`, in a Mixtral block (no shared expert).
SparseMoeBlock routed_part_of(SparseMoeBlock& block) {
  ModelConfig c = small_moe_config();
  SparseMoeBlock routed(c);
  torch::NoGradGuard no_grad;
  routed->gate->weight.copy_(block->gate->weight);
  for (std::size_t e = 0; e < block->experts->size(); ++e) {
    auto* to = routed->experts[e]->as<Expert>();
    auto* from = block->experts[e]->as<Expert>();
    to->w1->weight.copy_(from->w1->weight);
    to->w2->weight.copy_(from->w2->weight);
    to->w3->weight.copy_(from->w3->weight);
  }
  return routed;
}

}  // namespace

// Qwen2MoeSparseMoeBlock: y = the routed top-k mixture + sigmoid(g . x) shared_expert(x).
TEST(SharedExpert, AddsTheGatedSharedExpertToTheRoutedMixture) {
  torch::manual_seed(4);
  SparseMoeBlock block(shared_expert_config());
  SparseMoeBlock routed = routed_part_of(block);
  const auto x = torch::randn({3, 7, 16});
  torch::NoGradGuard no_grad;
  const auto hidden = x.reshape({-1, 16});
  const auto gate = torch::sigmoid(torch::matmul(hidden, block->shared_expert_gate->weight.t()));  // [tokens, 1]
  const auto expected = routed->forward(x).hidden.reshape({-1, 16}) + gate * block->shared_expert->forward(hidden);
  const MoeOutput output = block->forward(x);
  EXPECT_TRUE(torch::allclose(output.hidden.reshape({-1, 16}), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(output.router_logits, routed->forward(x).router_logits));
  EXPECT_EQ(block->shared_expert_gate->weight.sizes(), (std::vector<std::int64_t>{1, 16}));
}

// With the routed experts silent (down projections zero) the block is the shared expert, a dense
// SwiGLU FFN, times its gate: sigmoid(0) = 1/2 with the gate at zero, as merge writes it.
TEST(SharedExpert, WithTheRoutedExpertsSilentIsTheGatedDenseFfn) {
  torch::manual_seed(5);
  const ModelConfig c = shared_expert_config();
  SparseMoeBlock block(c);
  Mlp dense(c.hidden_size, c.shared_expert_intermediate_size, false);
  torch::NoGradGuard no_grad;
  for (const auto& expert : *block->experts) expert->as<Expert>()->w2->weight.zero_();
  block->shared_expert_gate->weight.zero_();
  dense->gate_proj->weight.copy_(block->shared_expert->gate_proj->weight);
  dense->up_proj->weight.copy_(block->shared_expert->up_proj->weight);
  dense->down_proj->weight.copy_(block->shared_expert->down_proj->weight);
  const auto x = torch::randn({2, 9, 16});
  for (const ExpertPath path : {ExpertPath::kLoop, ExpertPath::kGrouped}) {
    block->expert_path = path;
    EXPECT_TRUE(torch::allclose(block->forward(x).hidden, 0.5 * dense->forward(x), 1e-5, 1e-6));
  }
}

// Qwen2-MoE's norm_topk_prob: false keeps the top-k of the softmax over all experts as they are.
TEST(Moe, WithoutRenormalisationTheWeightsAreTheSoftmaxProbabilities) {
  torch::manual_seed(6);
  const auto logits = torch::randn({40, 6});
  const Routing routing = route_top_k(logits, 2, {}, /*renormalise=*/false);
  EXPECT_TRUE(torch::allclose(routing.weights, torch::softmax(logits, -1).gather(1, routing.experts)));
  EXPECT_TRUE((routing.weights.sum(-1) < 1).all().item<bool>());
  EXPECT_TRUE(torch::equal(routing.experts, route_top_k(logits, 2).experts));
}

namespace {

ModelConfig cartesian_config(std::int64_t sub_experts, std::int64_t shared_size) {
  ModelConfig c = small_moe_config();
  c.architecture = Architecture::kCartesianMoe;
  c.num_local_experts = sub_experts;
  c.num_experts_per_tok = 1;
  c.shared_expert_intermediate_size = shared_size;
  return c;
}

// One dense SwiGLU FFN holding a sub-layer's only sub-expert and its shared expert side by side:
// their outputs add, so the concatenated intermediate neurons compute the same sum.
Mlp concatenated_ffn(SparseMoeBlock& side) {
  auto* expert = side->experts[0]->as<Expert>();
  const auto& shared = side->shared_expert;
  Mlp ffn(16, expert->w1->weight.size(0) + shared->gate_proj->weight.size(0), false);
  torch::NoGradGuard no_grad;
  ffn->gate_proj->weight.copy_(torch::cat({expert->w1->weight, shared->gate_proj->weight}, 0));
  ffn->up_proj->weight.copy_(torch::cat({expert->w3->weight, shared->up_proj->weight}, 0));
  ffn->down_proj->weight.copy_(torch::cat({expert->w2->weight, shared->down_proj->weight}, 1));
  return ffn;
}

}  // namespace

// CartesianMoE's law: with one sub-expert a side (and each side's shared expert), the layer is
// two stacked pre-norm FFN blocks: h1 = h + FFN_A(x), y = h1 + FFN_B(norm(h1)).
TEST(CartesianMoe, OneSubExpertASideIsTwoStackedFfnBlocks) {
  torch::manual_seed(7);
  CartesianMoeBlock block(cartesian_config(1, 12));
  torch::NoGradGuard no_grad;
  block->intermediate_layernorm->weight.copy_(torch::rand({16}) + 0.5);
  Mlp ffn_a = concatenated_ffn(block->a), ffn_b = concatenated_ffn(block->b);
  const auto h = torch::randn({2, 6, 16});
  const auto x = torch::randn({2, 6, 16});
  const auto h1 = h + ffn_a->forward(x);
  const auto expected = h1 + ffn_b->forward(block->intermediate_layernorm->forward(h1));
  const CartesianMoeOutput output = block->forward(h, x);
  EXPECT_TRUE(torch::allclose(output.hidden, expected, 1e-5, 1e-5));
  EXPECT_EQ(output.router_logits_a.sizes(), (std::vector<std::int64_t>{12, 1}));
}

// Each token's B-side routing reads A's output: the pair (a, b) is chosen in sequence, and the
// model returns both routers' logits, A's then B's, for every layer.
TEST(CartesianMoe, EachLayerReturnsBothSubLayersRouterLogits) {
  ModelConfig c = load_hf_checkpoint(test::model_fixture("llama_mha_untied")).config;
  c.architecture = Architecture::kCartesianMoe;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.intermediate_size = 80;
  CausalLM model(c);
  initialize_weights(*model, 0.2, 3);
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, c.vocab_size, {2, 10});
  const CausalLMOutput out = model->forward(ids);
  ASSERT_EQ(out.router_logits.size(), 4u);  // 2 layers x (A, B)
  EXPECT_EQ(c.num_routers(), 4);
  EXPECT_EQ(selection_biases(*model).size(), 4u);
  EXPECT_FALSE(torch::equal(out.router_logits[0], out.router_logits[1]));
  EXPECT_TRUE(torch::equal(out.router_logits[1],
                           model->forward(ids).router_logits[1]));  // deterministic
}

}  // namespace svmoe
