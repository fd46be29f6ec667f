#include "svmoe/io/hf_config.h"

#include <gtest/gtest.h>

#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {
nlohmann::json llama_json() {
  return {{"model_type", "llama"},  {"vocab_size", 100},        {"hidden_size", 32},        {"intermediate_size", 64},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},  {"eos_token_id", 2},        {"bos_token_id", 1}};
}
}  // namespace

TEST(HfConfig, ReadsNewerRopeParametersForm) {
  const ModelConfig c = read_model_config(test::model_fixture("llama_gqa_tied_theta5e5"));
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.dtype, "float32");
}

TEST(HfConfig, ReadsOlderTopLevelRopeThetaAndTorchDtype) {
  const ModelConfig c = read_model_config(test::model_fixture("llama_legacy_rope_config"));
  EXPECT_DOUBLE_EQ(c.rope_theta, 20000.0);
  EXPECT_EQ(c.dtype, "float32");
}

TEST(HfConfig, ReadsMixtralFields) {
  const ModelConfig c = read_model_config(test::model_fixture("mixtral_8e_top2"));
  EXPECT_TRUE(c.is_moe());
  EXPECT_EQ(c.num_local_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_DOUBLE_EQ(c.router_aux_loss_coef, 0.01);
  EXPECT_EQ(c.head_dim, 16);  // "head_dim": null -> hidden / heads
}

TEST(HfConfig, DefaultsAndEosLists) {
  auto json = llama_json();
  json.erase("num_key_value_heads");
  json["eos_token_id"] = {2, 7};
  const ModelConfig c = parse_model_config(json, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{2, 7}));
}

TEST(HfConfig, UnsupportedFeaturesAreErrorsNotIgnored) {
  auto scaled = llama_json();
  scaled["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_THROW(parse_model_config(scaled, "c"), UnsupportedError);
  auto scaled_new = llama_json();
  scaled_new["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}};
  EXPECT_THROW(parse_model_config(scaled_new, "c"), UnsupportedError);
  auto gelu = llama_json();
  gelu["hidden_act"] = "gelu";
  EXPECT_THROW(parse_model_config(gelu, "c"), UnsupportedError);
  auto other = llama_json();
  other["model_type"] = "gpt2";
  EXPECT_THROW(parse_model_config(other, "c"), UnsupportedError);
  auto sliding = llama_json();
  sliding["model_type"] = "mixtral";
  sliding["num_local_experts"] = 4;
  sliding["num_experts_per_tok"] = 2;
  sliding["sliding_window"] = 4096;
  EXPECT_THROW(parse_model_config(sliding, "c"), UnsupportedError);
}

TEST(HfConfig, MalformedFieldsNameFileAndKey) {
  auto json = llama_json();
  json["hidden_size"] = "big";
  const std::string message = test::error_message<FormatError>([&] { parse_model_config(json, "ckpt/config.json"); });
  EXPECT_NE(message.find("ckpt/config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("hidden_size"), std::string::npos) << message;
  auto heads = llama_json();
  heads["num_key_value_heads"] = 3;
  EXPECT_THROW(parse_model_config(heads, "c"), FormatError);
  auto missing = llama_json();
  missing.erase("vocab_size");
  EXPECT_THROW(parse_model_config(missing, "c"), FormatError);
}

TEST(HfConfig, WritesWhatItReadsAndKeepsUnknownFields) {
  auto json = llama_json();
  json["some_future_field"] = "kept";
  const ModelConfig c = parse_model_config(json, "c");
  const auto written = model_config_to_json(c, json);
  EXPECT_EQ(written["some_future_field"], "kept");
  EXPECT_EQ(written["architectures"][0], "LlamaForCausalLM");
  const ModelConfig again = parse_model_config(written, "written");
  EXPECT_EQ(again.num_key_value_heads, c.num_key_value_heads);
  EXPECT_DOUBLE_EQ(again.rope_theta, c.rope_theta);
  EXPECT_EQ(again.eos_token_ids, c.eos_token_ids);
}

namespace {
// Qwen1.5-MoE-A2.7B's config.json, shrunk: no qkv_bias key (older configs), norm_topk_prob false.
nlohmann::json qwen2_moe_json() {
  auto json = llama_json();
  json["model_type"] = "qwen2_moe";
  json["intermediate_size"] = 96;
  json["moe_intermediate_size"] = 16;
  json["shared_expert_intermediate_size"] = 64;
  json["num_experts"] = 6;
  json["num_experts_per_tok"] = 4;
  json["norm_topk_prob"] = false;
  json["decoder_sparse_step"] = 1;
  json["mlp_only_layers"] = nlohmann::json::array();
  json["use_sliding_window"] = false;
  json["sliding_window"] = 32768;
  return json;
}
}  // namespace

TEST(HfConfig, ReadsQwen2MoeFields) {
  const ModelConfig c = parse_model_config(qwen2_moe_json(), "c");
  EXPECT_TRUE(c.is_moe());
  EXPECT_EQ(c.architecture, Architecture::kQwen2Moe);
  EXPECT_EQ(c.num_local_experts, 6);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.intermediate_size, 16);  // each routed expert's
  EXPECT_EQ(c.shared_expert_intermediate_size, 64);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.qkv_bias);  // Qwen2MoeAttention's default
  EXPECT_FALSE(c.attention_bias);
}

TEST(HfConfig, WritesQwen2MoeAsTransformersReadsIt) {
  ModelConfig c = parse_model_config(qwen2_moe_json(), "c");
  c.norm_topk_prob = true;
  const auto written = model_config_to_json(c, qwen2_moe_json());
  EXPECT_EQ(written["architectures"][0], "Qwen2MoeForCausalLM");
  EXPECT_EQ(written["num_experts"], 6);
  EXPECT_FALSE(written.contains("num_local_experts"));
  EXPECT_EQ(written["moe_intermediate_size"], 16);
  EXPECT_EQ(written["norm_topk_prob"], true);
  EXPECT_EQ(written["qkv_bias"], true);
  EXPECT_EQ(written["use_sliding_window"], false);
  const ModelConfig again = parse_model_config(written, "written");
  EXPECT_EQ(again.shared_expert_intermediate_size, 64);
  EXPECT_EQ(again.intermediate_size, 16);
  EXPECT_TRUE(again.norm_topk_prob);
  EXPECT_EQ(parameter_count(again), parameter_count(c));
}

TEST(HfConfig, Qwen2MoeLayersWithoutAnMoeBlockAreRefusedByKey) {
  auto step = qwen2_moe_json();
  step["decoder_sparse_step"] = 2;
  const std::string message = test::error_message<UnsupportedError>([&] { parse_model_config(step, "q/config.json"); });
  EXPECT_NE(message.find("decoder_sparse_step"), std::string::npos) << message;
  auto dense_layers = qwen2_moe_json();
  dense_layers["mlp_only_layers"] = {1};
  EXPECT_NE(
      test::error_message<UnsupportedError>([&] { parse_model_config(dense_layers, "c"); }).find("mlp_only_layers"),
      std::string::npos);
  auto missing = qwen2_moe_json();
  missing.erase("shared_expert_intermediate_size");
  EXPECT_NE(test::error_message<FormatError>([&] {
              parse_model_config(missing, "c");
            }).find("shared_expert_intermediate_size"),
            std::string::npos);
}

TEST(HfConfig, CartesianMoeIsSvmoesOwnModelType) {
  auto json = llama_json();
  json["model_type"] = "svmoe_cartesian_moe";
  json["num_local_experts"] = 4;
  json["num_experts_per_tok"] = 2;
  json["shared_expert_intermediate_size"] = 32;
  const ModelConfig c = parse_model_config(json, "c");
  EXPECT_EQ(c.architecture, Architecture::kCartesianMoe);
  EXPECT_EQ(c.num_routers(), 4);
  EXPECT_EQ(c.shared_expert_intermediate_size, 32);
  const auto written = model_config_to_json(c, json);
  EXPECT_EQ(written["architectures"][0], "SvmoeCartesianMoeForCausalLM");
  EXPECT_EQ(parse_model_config(written, "w").shared_expert_intermediate_size, 32);
  json.erase("shared_expert_intermediate_size");
  EXPECT_FALSE(parse_model_config(json, "c").has_shared_expert());
}

}  // namespace svmoe

namespace svmoe {

// Every architecture's config.json, written and read back: the same architecture and shape, its
// own model_type and class name, and the expert keys of its row.
TEST(HfConfig, EveryArchitectureRoundTripsThroughConfigJson) {
  for (const Architecture a : kArchitectures) {
    ModelConfig c = parse_model_config(llama_json(), "llama");
    c.architecture = a;
    if (is_moe(a)) {
      c.num_local_experts = 4;
      c.num_experts_per_tok = 2;
    }
    if (a == Architecture::kQwen2Moe || a == Architecture::kCartesianMoe) c.shared_expert_intermediate_size = 32;
    const ArchitectureRow& row = architecture_row(a);
    const auto written = model_config_to_json(c, nlohmann::json::object());
    EXPECT_EQ(written["model_type"], row.model_type);
    EXPECT_EQ(written["architectures"][0], row.class_name);
    if (is_moe(a)) {
      EXPECT_EQ(written[row.experts_key], 4) << row.model_type;
    }
    EXPECT_EQ(written[row.expert_ffn_key], 64) << row.model_type;
    const ModelConfig again = parse_model_config(written, "written");
    EXPECT_EQ(again.architecture, a) << row.model_type;
    EXPECT_EQ(again.num_routers(), c.num_routers()) << row.model_type;
    EXPECT_EQ(parameter_count(again), parameter_count(c)) << row.model_type;
  }
}

}  // namespace svmoe
