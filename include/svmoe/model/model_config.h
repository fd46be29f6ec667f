// The architecture of a causal LM: Hugging Face Llama (dense), Mixtral (MoE) or Qwen2-MoE (MoE
// with a gated shared expert) fields, or svmoe's own causal Soft MoE and CartesianMoE (Mixtral's
// fields, their own model_type; docs/moe.md). Read from and written to config.json by
// io/hf_config.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace svmoe {

struct ModelConfig {
  std::string model_type = "llama";  // kLlama (dense) | kMixtral | kQwen2Moe | kSoftMoe | kCartesianMoe (MoE)
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;  // each routed expert's FFN size for MoE (qwen2_moe: moe_intermediate_size)
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // biases on q, k, v and o
  bool qkv_bias = false;        // biases on q, k and v only (Qwen2-MoE's `qkv_bias`)
  bool mlp_bias = false;
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;  // config.json allows one id or a list
  std::optional<std::int64_t> pad_token_id;
  std::string dtype = "float32";  // the checkpoint's stored dtype (config `dtype` / `torch_dtype`)

  // MoE only.
  std::int64_t num_local_experts = 0;  // routed experts (qwen2_moe: `num_experts`)
  std::int64_t num_experts_per_tok = 0;
  double router_aux_loss_coef = 0.0;
  bool norm_topk_prob = true;  // the top-k probabilities renormalised to sum 1 (Mixtral always does)
  // The always-on shared expert's FFN size (`shared_expert_intermediate_size`): Qwen2-MoE's
  // (behind a sigmoid gate), or each CartesianMoE sub-layer's (ungated); 0: none.
  std::int64_t shared_expert_intermediate_size = 0;

  // transformers' MixtralConfig default, written by a merge (no LB trained yet) and read where
  // config.json lacks the key.
  static constexpr double kTransformersRouterAuxLossCoef = 0.001;
  static constexpr const char* kLlama = "llama";
  static constexpr const char* kMixtral = "mixtral";
  static constexpr const char* kQwen2Moe = "qwen2_moe";                // routed experts + a gated shared expert
  static constexpr const char* kSoftMoe = "svmoe_soft_moe";            // no transformers class: svmoe's own
  static constexpr const char* kCartesianMoe = "svmoe_cartesian_moe";  // no transformers class: svmoe's own

  bool is_moe() const {
    return model_type == kMixtral || model_type == kQwen2Moe || model_type == kSoftMoe || model_type == kCartesianMoe;
  }
  bool is_soft_moe() const { return model_type == kSoftMoe; }
  bool is_qwen2_moe() const { return model_type == kQwen2Moe; }
  bool is_cartesian_moe() const { return model_type == kCartesianMoe; }
  bool has_shared_expert() const { return shared_expert_intermediate_size > 0; }
  // Routers in the model, in forward order: one a layer, or a CartesianMoE layer's two (A, B).
  std::int64_t num_routers() const { return is_moe() ? num_hidden_layers * (is_cartesian_moe() ? 2 : 1) : 0; }
  std::int64_t num_parameters() const;
};

}  // namespace svmoe
