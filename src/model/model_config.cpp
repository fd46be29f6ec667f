#include "svmoe/model/model_config.h"

namespace svmoe {

std::int64_t ModelConfig::num_parameters() const {
  const std::int64_t h = hidden_size;
  const std::int64_t q = num_attention_heads * head_dim;
  const std::int64_t kv = num_key_value_heads * head_dim;
  std::int64_t attention = h * q + 2 * h * kv + q * h;
  if (attention_bias || qkv_bias) attention += q + 2 * kv;
  if (attention_bias) attention += h;
  std::int64_t ffn = 3 * h * intermediate_size + (mlp_bias ? 2 * intermediate_size + h : 0);
  if (is_moe()) {
    const std::int64_t sublayer = num_local_experts * 3 * h * intermediate_size + num_local_experts * h +
                                  3 * h * shared_expert_intermediate_size + (is_qwen2_moe() ? h : 0);
    ffn = is_cartesian_moe() ? 2 * sublayer + h : sublayer;  // CartesianMoE: A, B and the norm between
  }
  const std::int64_t block = attention + ffn + 2 * h;
  const std::int64_t embeddings = vocab_size * h * (tie_word_embeddings ? 1 : 2);
  return embeddings + num_hidden_layers * block + h;
}

}  // namespace svmoe
