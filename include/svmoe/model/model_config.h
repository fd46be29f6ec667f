// The shape of a causal LM of one of svmoe's architectures (model/architecture.h): Hugging Face
// Llama (dense), Mixtral or Qwen2-MoE (MoE) fields, or svmoe's own causal Soft MoE and
// CartesianMoE (Mixtral's fields, their own model_type; docs/moe.md). Read from and written to
// config.json by io/hf_config.h; its costs in model/architecture_arithmetic.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "svmoe/model/architecture.h"

namespace svmoe {

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
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
  // config.json's model_type.
  const char* model_type() const { return architecture_row(architecture).model_type; }
  bool is_moe() const { return svmoe::is_moe(architecture); }
  bool has_shared_expert() const { return shared_expert_intermediate_size > 0; }
  // Routers in the model, in forward order: one a layer, or a CartesianMoE layer's two (A, B).
  std::int64_t num_routers() const { return num_hidden_layers * architecture_row(architecture).routed_sub_layers; }
};

}  // namespace svmoe
