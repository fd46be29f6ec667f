// The architecture of a causal LM: Hugging Face Llama (dense) or Mixtral (MoE) fields, or
// svmoe's causal Soft MoE (Mixtral's fields and tensor names, its own model_type; docs/moe.md).
// Read from and written to config.json by io/hf_config.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace svmoe {

struct ModelConfig {
  std::string model_type = "llama";  // kLlama (dense) | kMixtral (MoE) | kSoftMoe (MoE)
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;  // each expert's FFN size for MoE
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;  // config.json allows one id or a list
  std::optional<std::int64_t> pad_token_id;
  std::string dtype = "float32";  // the checkpoint's stored dtype (config `dtype` / `torch_dtype`)

  // MoE (Mixtral) only.
  std::int64_t num_local_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  double router_aux_loss_coef = 0.0;

  static constexpr const char* kLlama = "llama";
  static constexpr const char* kMixtral = "mixtral";
  static constexpr const char* kSoftMoe = "svmoe_soft_moe";  // no transformers class: svmoe's own

  bool is_moe() const { return model_type == kMixtral || model_type == kSoftMoe; }
  bool is_soft_moe() const { return model_type == kSoftMoe; }
  std::int64_t num_parameters() const;
};

}  // namespace svmoe
