#include "svmoe/stages/merge.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/model/initialization.h"
#include "svmoe/stages/upcycling.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// A copy of a fixture whose every weight is changed by `f(name, weight)`.
fs::path changed_copy_by_name(const fs::path& source, const fs::path& target,
                              const std::function<torch::Tensor(const std::string&, const torch::Tensor&)>& f) {
  fs::create_directories(target);
  fs::copy_file(source / "config.json", target / "config.json");
  const CheckpointTensors tensors = CheckpointTensors::open(source);
  std::vector<NamedTensor> changed;
  for (const auto& name : tensors.names()) changed.push_back({name, f(name, tensors.tensor(name))});
  write_safetensors(target / "model.safetensors", changed);
  return target;
}

// A copy of a fixture whose every weight is changed by `f`.
fs::path changed_copy(const fs::path& source, const fs::path& target,
                      const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  return changed_copy_by_name(source, target, [&](const std::string&, const torch::Tensor& t) { return f(t); });
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

// `copies` of one dense model, by an upcycling method.
MergeSettings upcycling(MergeMethod method, const fs::path& base, std::int64_t copies, const fs::path& output) {
  MergeSettings s;
  s.method = method;
  s.base_model = base;
  s.num_experts = copies;
  s.output = output;
  return s;
}

std::string file_bytes(const fs::path& file) { return read_text_file(file); }

// The neurons of `expert` in `layer` whose FFN weights differ from the dense model's, per
// projection: rows of w1 and w3, columns of w2.
std::vector<torch::Tensor> changed_neurons(const CheckpointTensors& moe, const CheckpointTensors& dense,
                                           std::int64_t layer, std::int64_t expert) {
  using parameter_names::FfnProjection;
  ModelConfig mixtral;
  mixtral.architecture = Architecture::kMixtral;
  std::vector<torch::Tensor> changed;
  for (const FfnProjection p : {FfnProjection::kGate, FfnProjection::kUp, FfnProjection::kDown}) {
    const torch::Tensor a = moe.tensor(parameter_names::expert_ffn(mixtral, layer, expert, p));
    const torch::Tensor b = dense.tensor(parameter_names::dense_ffn(layer, p));
    changed.push_back((a != b).any(p == FfnProjection::kDown ? 0 : 1).nonzero().flatten());
  }
  return changed;
}

// The process's peak resident memory since the last reset_peak_resident(), in MB (Linux).
void reset_peak_resident() { std::ofstream("/proc/self/clear_refs") << "5"; }
double peak_resident_mb() {
  const std::string status = read_text_file("/proc/self/status");
  const auto at = status.find("VmHWM:");
  return std::stod(status.substr(at + 6)) / 1024.0;  // kB
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
  // No LB trained yet: transformers' default, whatever finetune.load_balancing.alpha says.
  EXPECT_EQ(config["router_aux_loss_coef"], 0.001);
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

// Naive upcycling (every expert a copy of one dense model's FFN) gives the dense model's logits
// whatever the routers: the top-k weights are renormalised to sum to one.
TEST(Merge, NaiveUpcyclingOfOneModelGivesItsLogitsBack) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_gqa_tied_theta5e5");
  MergeSettings s = upcycling(MergeMethod::kNaive, dense, 4, dir / "moe");
  s.router_init_std = 1.0;
  EXPECT_EQ(run_merge(s, RuntimeSettings{}).config.num_local_experts, 4);
  const auto ids = SafetensorsFile::open(dense / "expected.safetensors").tensor("input_ids");
  const CausalLMOutput moe = forward(dir / "moe", ids);
  EXPECT_LT((moe.logits - forward(dense, ids).logits).abs().max().item<double>(), 1e-5);
  EXPECT_GT(moe.router_logits[0].std().item<double>(), 0.1);
  const auto provenance = nlohmann::json::parse(read_text_file(dir / "moe" / "svmoe_merge.json"));
  EXPECT_EQ(provenance["method"], "naive");
  EXPECT_EQ(provenance["base_model"], dense.string());
}

// Drop-Upcycling with r = 0 is naive upcycling, byte for byte.
TEST(Merge, DropUpcyclingAtRatioZeroIsNaiveByteForByte) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  run_merge(upcycling(MergeMethod::kNaive, dense, 3, dir / "naive"), RuntimeSettings{});
  MergeSettings drop = upcycling(MergeMethod::kDropUpcycling, dense, 3, dir / "drop");
  drop.drop_ratio = 0.0;
  run_merge(drop, RuntimeSettings{});
  EXPECT_TRUE(file_bytes(dir / "naive" / "model.safetensors") == file_bytes(dir / "drop" / "model.safetensors"));
  EXPECT_TRUE(file_bytes(dir / "naive" / "config.json") == file_bytes(dir / "drop" / "config.json"));
}

// Each expert of each layer re-draws its own neurons S (one set for w1, w3 and w2); every other
// weight is the dense model's.
TEST(Merge, DropUpcyclingRedrawsEachExpertsOwnNeurons) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  RuntimeSettings runtime;
  runtime.seed = 11;
  MergeSettings s = upcycling(MergeMethod::kDropUpcycling, dense, 4, dir / "moe");
  s.drop_ratio = 0.25;
  run_merge(s, runtime);
  const CheckpointTensors moe = CheckpointTensors::open(dir / "moe");
  const CheckpointTensors base = CheckpointTensors::open(dense);
  for (std::int64_t layer = 0; layer < 2; ++layer) {
    for (std::int64_t expert = 0; expert < 4; ++expert) {
      const torch::Tensor s_le = dropped_neurons(160, 0.25, layer, expert, 11);
      ASSERT_EQ(s_le.numel(), 40);
      for (const auto& changed : changed_neurons(moe, base, layer, expert)) EXPECT_TRUE(torch::equal(changed, s_le));
    }
  }
  EXPECT_FALSE(torch::equal(dropped_neurons(160, 0.25, 0, 0, 11), dropped_neurons(160, 0.25, 0, 1, 11)));
  for (const std::string name : {"model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight",
                                 "model.layers.0.post_attention_layernorm.weight", "lm_head.weight"}) {
    EXPECT_TRUE(torch::equal(moe.tensor(name), base.tensor(name))) << name;
  }
}

// BTX + Drop-Upcycling: trained expert e's FFN with its own S re-drawn; the rest as BTX.
TEST(Merge, BtxDropUpcyclingDropsNeuronsOfEachTrainedExpert) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  const fs::path b = changed_copy(a, dir / "b", [](const torch::Tensor& t) { return t * 3; });
  MergeSettings s = settings({a, b}, dir / "moe");
  s.method = MergeMethod::kBtxDropUpcycling;
  run_merge(s, RuntimeSettings{});
  const CheckpointTensors moe = CheckpointTensors::open(dir / "moe");
  const std::vector<CheckpointTensors> in = {CheckpointTensors::open(a), CheckpointTensors::open(b)};
  for (std::int64_t e = 0; e < 2; ++e) {
    const torch::Tensor s_le = dropped_neurons(160, 0.5, 1, e, RuntimeSettings{}.seed);
    for (const auto& changed : changed_neurons(moe, in[static_cast<std::size_t>(e)], 1, e)) {
      EXPECT_TRUE(torch::equal(changed, s_le)) << "expert " << e;
    }
  }
  const std::string norm = "model.norm.weight";
  EXPECT_TRUE(torch::allclose(moe.tensor(norm), (in[0].tensor(norm) + in[1].tensor(norm)) / 2));
}

// A seeded merge is reproducible byte for byte; another seed gives other experts and routers.
TEST(Merge, SeededUpcyclingIsByteIdentical) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_bf16");
  RuntimeSettings runtime;
  for (const MergeMethod method : {MergeMethod::kNoise, MergeMethod::kDropUpcycling}) {
    const std::string name = enum_name(method);
    MergeSettings s = upcycling(method, dense, 4, dir / (name + "_1"));
    s.router_init = RouterInit::kUniform;
    run_merge(s, runtime);
    s.output = dir / (name + "_2");
    run_merge(s, runtime);
    runtime.seed += 1;
    s.output = dir / (name + "_3");
    run_merge(s, runtime);
    runtime.seed -= 1;
    const std::string one = file_bytes(dir / (name + "_1") / "model.safetensors");
    EXPECT_TRUE(one == file_bytes(dir / (name + "_2") / "model.safetensors")) << name;
    EXPECT_FALSE(one == file_bytes(dir / (name + "_3") / "model.safetensors")) << name;
    const CheckpointTensors out = CheckpointTensors::open(dir / (name + "_1"));
    EXPECT_EQ(out.tensor("model.layers.0.block_sparse_moe.experts.3.w2.weight").scalar_type(), torch::kBFloat16);
  }
}

// Merging streams whatever the method: resident memory grows by a few tensors, not by the MoE.
TEST(Merge, UpcyclingStreamsWithinAFewTensorsOfMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's quarantine holds freed memory";
#endif
  test::ScratchDir dir;
  ModelConfig config = load_hf_checkpoint(test::model_fixture("llama_mha_untied")).config;
  config.hidden_size = 256;
  config.intermediate_size = 2048;  // one FFN weight: 2 MB in float32
  CausalLM model(config);
  initialize_weights(*model, config.initializer_range, 3);
  save_hf_checkpoint(dir / "dense", config, named_tensors(*model));
  MergeSettings s = upcycling(MergeMethod::kDropUpcycling, dir / "dense", 16, dir / "moe");
  s.max_shard_mb = 64;
  reset_peak_resident();
  const double before = peak_resident_mb();
  const MergeResult result = run_merge(s, RuntimeSettings{});
  const double growth = peak_resident_mb() - before;
  const double moe_mb = static_cast<double>(result.parameters) * 4 / (1 << 20);  // about 200 MB
  EXPECT_GT(moe_mb, 190);
  RecordProperty("peak_growth_mb", std::to_string(growth));
  EXPECT_LT(growth, 40) << "peak resident memory grew by " << growth << " MB while merging " << moe_mb << " MB";
}

// merge.moe_kind: soft writes svmoe's causal Soft MoE: Mixtral's tensors, its own model_type.
TEST(Merge, SoftMoeKindWritesItsOwnModelType) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  MergeSettings s = upcycling(MergeMethod::kNaive, dense, 4, dir / "soft");
  s.moe_kind = MoeKind::kSoft;
  run_merge(s, RuntimeSettings{});
  run_merge(upcycling(MergeMethod::kNaive, dense, 4, dir / "sparse"), RuntimeSettings{});
  const auto config = nlohmann::json::parse(read_text_file(dir / "soft" / "config.json"));
  EXPECT_EQ(config["model_type"], "svmoe_soft_moe");
  EXPECT_EQ(config["architectures"][0], "SvmoeSoftMoeForCausalLM");
  EXPECT_TRUE(file_bytes(dir / "soft" / "model.safetensors") == file_bytes(dir / "sparse" / "model.safetensors"));
  const auto ids = SafetensorsFile::open(dense / "expected.safetensors").tensor("input_ids");
  const CausalLMOutput soft = forward(dir / "soft", ids);
  EXPECT_TRUE(torch::isfinite(soft.logits).all().item<bool>());
  EXPECT_FALSE(torch::allclose(soft.logits, forward(dir / "sparse", ids).logits));  // slots mix the prefix
}

namespace {

// A copy of a dense fixture whose FFN down projections are scaled by `factor`.
fs::path ffn_scaled_copy(const fs::path& source, const fs::path& target, double factor) {
  return changed_copy_by_name(source, target, [&](const std::string& name, const torch::Tensor& t) {
    const auto ffn = parameter_names::parse_dense_ffn(name);
    return ffn && ffn->projection == parameter_names::FfnProjection::kDown ? t * factor : t;
  });
}

}  // namespace

// Naive upcycling with the base model's FFN as shared expert, its gate at zero: every layer
// computes FFN(x) + sigmoid(0) FFN(x), so the MoE is the dense model with its down projections
// times 1.5, whatever the routers say.
TEST(Merge, SharedExpertFromTheBaseAddsHalfTheDenseFfn) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  MergeSettings s = upcycling(MergeMethod::kNaive, dense, 4, dir / "moe");
  s.shared_expert = SharedExpertInit::kBase;
  s.router_init_std = 1.0;  // strong, random routing
  const MergeResult result = run_merge(s, RuntimeSettings{});
  EXPECT_EQ(result.config.architecture, Architecture::kQwen2Moe);
  const auto ids = SafetensorsFile::open(dense / "expected.safetensors").tensor("input_ids");
  const auto scaled = forward(ffn_scaled_copy(dense, dir / "scaled", 1.5), ids);
  EXPECT_LT((forward(dir / "moe", ids).logits - scaled.logits).abs().max().item<double>(), 1e-5);

  const auto config = nlohmann::json::parse(read_text_file(dir / "moe" / "config.json"));
  EXPECT_EQ(config["model_type"], "qwen2_moe");
  EXPECT_EQ(config["architectures"][0], "Qwen2MoeForCausalLM");
  EXPECT_EQ(config["num_experts"], 4);
  EXPECT_EQ(config["moe_intermediate_size"], 160);
  EXPECT_EQ(config["shared_expert_intermediate_size"], 160);
  EXPECT_EQ(config["norm_topk_prob"], true);  // Mixtral's renormalised top-k
  const CheckpointTensors out = CheckpointTensors::open(dir / "moe");
  const CheckpointTensors in = CheckpointTensors::open(dense);
  EXPECT_TRUE(torch::equal(out.tensor("model.layers.1.mlp.shared_expert.down_proj.weight"),
                           in.tensor("model.layers.1.mlp.down_proj.weight")));
  EXPECT_TRUE(torch::equal(out.tensor("model.layers.1.mlp.experts.3.up_proj.weight"),
                           in.tensor("model.layers.1.mlp.up_proj.weight")));
  EXPECT_TRUE(torch::equal(out.tensor("model.layers.0.mlp.shared_expert_gate.weight"), torch::zeros({1, 64})));
  EXPECT_TRUE(torch::equal(out.tensor("model.layers.0.self_attn.k_proj.bias"), torch::zeros({64})));
  const auto provenance = nlohmann::json::parse(read_text_file(dir / "moe" / kMergeProvenanceFile));
  EXPECT_EQ(provenance["shared_expert"]["init"], "base");
}

// Beside trained experts: `mean` averages their FFNs; `base` copies merge.base_model's.
TEST(Merge, SharedExpertOfTrainedExpertsIsTheirMeanOrTheBaseModels) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  torch::manual_seed(0);
  const fs::path b = changed_copy(a, dir / "b", [](const torch::Tensor& t) { return t * 2 + torch::randn_like(t); });
  const fs::path base = changed_copy(a, dir / "base", [](const torch::Tensor& t) { return -t; });
  MergeSettings mean = settings({a, b}, dir / "mean");
  mean.shared_expert = SharedExpertInit::kMean;
  run_merge(mean, RuntimeSettings{});
  MergeSettings from_base = settings({a, b}, dir / "from_base");
  from_base.shared_expert = SharedExpertInit::kBase;
  from_base.base_model = base;
  run_merge(from_base, RuntimeSettings{});
  const CheckpointTensors in_a = CheckpointTensors::open(a), in_b = CheckpointTensors::open(b);
  const CheckpointTensors in_base = CheckpointTensors::open(base);
  const CheckpointTensors out_mean = CheckpointTensors::open(dir / "mean");
  const CheckpointTensors out_base = CheckpointTensors::open(dir / "from_base");
  for (const char* p : {"gate", "up", "down"}) {
    const std::string dense = std::string("model.layers.0.mlp.") + p + "_proj.weight";
    const std::string shared = std::string("model.layers.0.mlp.shared_expert.") + p + "_proj.weight";
    EXPECT_TRUE(torch::allclose(out_mean.tensor(shared), (in_a.tensor(dense) + in_b.tensor(dense)) / 2, 1e-6, 1e-6));
    EXPECT_TRUE(torch::equal(out_base.tensor(shared), in_base.tensor(dense))) << p;
    EXPECT_TRUE(torch::equal(out_base.tensor(std::string("model.layers.0.mlp.experts.1.") + p + "_proj.weight"),
                             in_b.tensor(dense)));
  }
  // The base model's other weights are not merged: the attention is the experts' mean.
  const std::string attention = "model.layers.1.self_attn.o_proj.weight";
  EXPECT_TRUE(
      torch::allclose(out_base.tensor(attention), (in_a.tensor(attention) + in_b.tensor(attention)) / 2, 1e-6, 1e-6));
}

TEST(Merge, SharedExpertBaseMustBeTheExpertsDenseModel) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  MergeSettings s = settings({a, a}, dir / "moe");
  s.shared_expert = SharedExpertInit::kBase;
  s.base_model = test::model_fixture("mixtral_8e_top2");
  const std::string message = test::error_message<ConfigError>([&] { run_merge(s, RuntimeSettings{}); });
  EXPECT_NE(message.find("merge.base_model"), std::string::npos) << message;
  EXPECT_NE(message.find("mixtral"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "moe"));
}

// CartesianMoE from BTX experts: sub-layer A's sub-expert e is the first half of expert e's FFN
// neurons, B's the second; the norm between starts as the mean post-attention norm; two routers
// a layer, drawn independently.
TEST(Merge, CartesianMoeSplitsEachExpertsFfnIntoHalves) {
  test::ScratchDir dir;
  const fs::path a = test::model_fixture("llama_mha_untied");
  torch::manual_seed(0);
  const fs::path b = changed_copy(a, dir / "b", [](const torch::Tensor& t) { return t * 2 + torch::randn_like(t); });
  MergeSettings s = settings({a, b}, dir / "moe");
  s.moe_kind = MoeKind::kCartesian;
  s.num_experts_per_tok = 1;
  s.shared_expert = SharedExpertInit::kMean;
  const MergeResult result = run_merge(s, RuntimeSettings{});
  EXPECT_EQ(result.config.architecture, Architecture::kCartesianMoe);
  EXPECT_EQ(result.config.intermediate_size, 80);
  const CheckpointTensors out = CheckpointTensors::open(dir / "moe");
  const std::vector<CheckpointTensors> in = {CheckpointTensors::open(a), CheckpointTensors::open(b)};
  const std::string layer = "model.layers.1.";
  for (int e = 0; e < 2; ++e) {
    const auto gate = in[e].tensor(layer + "mlp.gate_proj.weight");  // [160, 64]
    const auto down = in[e].tensor(layer + "mlp.down_proj.weight");  // [64, 160]
    const std::string expert = ".experts." + std::to_string(e);
    EXPECT_TRUE(torch::equal(out.tensor(layer + "cartesian_moe.a" + expert + ".w1.weight"), gate.narrow(0, 0, 80)));
    EXPECT_TRUE(torch::equal(out.tensor(layer + "cartesian_moe.b" + expert + ".w1.weight"), gate.narrow(0, 80, 80)));
    EXPECT_TRUE(torch::equal(out.tensor(layer + "cartesian_moe.b" + expert + ".w2.weight"), down.narrow(1, 80, 80)));
  }
  const auto mean_up = (in[0].tensor(layer + "mlp.up_proj.weight") + in[1].tensor(layer + "mlp.up_proj.weight")) / 2;
  EXPECT_TRUE(torch::allclose(out.tensor(layer + "cartesian_moe.a.shared_expert.up_proj.weight"),
                              mean_up.narrow(0, 0, 80), 1e-6, 1e-6));
  const std::string norm = layer + "post_attention_layernorm.weight";
  EXPECT_TRUE(torch::allclose(out.tensor(layer + "cartesian_moe.intermediate_layernorm.weight"),
                              (in[0].tensor(norm) + in[1].tensor(norm)) / 2, 1e-6, 1e-6));
  EXPECT_FALSE(torch::equal(out.tensor(layer + "cartesian_moe.a.gate.weight"),
                            out.tensor(layer + "cartesian_moe.b.gate.weight")));
  EXPECT_FALSE(out.contains(layer + "mlp.gate_proj.weight"));
  const auto config = nlohmann::json::parse(read_text_file(dir / "moe" / "config.json"));
  EXPECT_EQ(config["model_type"], "svmoe_cartesian_moe");
  EXPECT_EQ(config["intermediate_size"], 80);
  EXPECT_EQ(config["shared_expert_intermediate_size"], 80);
  const auto ids = SafetensorsFile::open(a / "expected.safetensors").tensor("input_ids");
  const CausalLMOutput moe = forward(dir / "moe", ids);
  EXPECT_TRUE(torch::isfinite(moe.logits).all().item<bool>());
  EXPECT_EQ(moe.router_logits.size(), 4u);
}

}  // namespace svmoe
