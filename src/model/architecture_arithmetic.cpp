#include "svmoe/model/architecture_arithmetic.h"

#include "svmoe/model/architecture.h"

namespace svmoe {

FeedForwardShape feed_forward_shape(const ModelConfig& c) {
  FeedForwardShape ffn;
  ffn.expert_ffn = c.intermediate_size;
  ffn.sub_layers = 1;
  switch (c.architecture) {
    case Architecture::kLlama:
      return ffn;
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
    case Architecture::kCartesianMoe:
      ffn.experts_per_position = static_cast<double>(c.num_experts_per_tok);
      break;
    case Architecture::kSoftMoe:
      ffn.experts_per_position = static_cast<double>(c.num_local_experts);  // every expert, every slot
      ffn.soft_mixing = true;
      break;
  }
  const ArchitectureRow& row = architecture_row(c.architecture);
  ffn.sub_layers = row.routed_sub_layers;
  ffn.routed_experts = c.num_local_experts;
  ffn.shared_ffn = c.shared_expert_intermediate_size;
  ffn.shared_gate = row.gated_shared_expert;  // Qwen2-MoE builds its gate in every layer
  ffn.norm_between = row.routed_sub_layers == 2;
  return ffn;
}

namespace {

double head_dim_of(const ModelConfig& c) {
  return c.head_dim > 0 ? static_cast<double>(c.head_dim)
                        : static_cast<double>(c.hidden_size) / static_cast<double>(c.num_attention_heads);
}

}  // namespace

std::int64_t parameter_count(const ModelConfig& c) {
  const std::int64_t h = c.hidden_size;
  const std::int64_t q = c.num_attention_heads * c.head_dim;
  const std::int64_t kv = c.num_key_value_heads * c.head_dim;
  std::int64_t attention = h * q + 2 * h * kv + q * h;
  if (c.attention_bias || c.qkv_bias) attention += q + 2 * kv;
  if (c.attention_bias) attention += h;
  const FeedForwardShape s = feed_forward_shape(c);
  std::int64_t ffn = 0;
  if (s.routed_experts == 0) {
    ffn = 3 * h * s.expert_ffn + (c.mlp_bias ? 2 * s.expert_ffn + h : 0);
  } else {
    const std::int64_t sub_layer =
        s.routed_experts * (3 * h * s.expert_ffn + h) + 3 * h * s.shared_ffn + (s.shared_gate ? h : 0);
    ffn = s.sub_layers * sub_layer + (s.norm_between ? h : 0);
  }
  const std::int64_t block = attention + ffn + 2 * h;
  const std::int64_t embeddings = c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2);
  return embeddings + c.num_hidden_layers * block + h;
}

std::int64_t router_parameter_count(const ModelConfig& c) {
  const FeedForwardShape s = feed_forward_shape(c);
  return c.num_hidden_layers * (s.routed_experts == 0 ? 0 : s.sub_layers) * s.routed_experts * c.hidden_size;
}

double feed_forward_training_flops_per_token(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const FeedForwardShape s = feed_forward_shape(c);
  const double f = static_cast<double>(s.expert_ffn);
  const double n = static_cast<double>(s.routed_experts);
  const double sub_layer = s.experts_per_position * 3 * h * f + h * n + 3 * h * static_cast<double>(s.shared_ffn) +
                           (s.shared_gate ? h : 0.0);
  return 6 * s.sub_layers * sub_layer;
}

double weight_training_flops_per_token(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = head_dim_of(c) * static_cast<double>(c.num_attention_heads);
  const double kv = head_dim_of(c) * static_cast<double>(c.num_key_value_heads);
  const double layers = static_cast<double>(c.num_hidden_layers);
  // q, k, v and o projections, the FFN blocks, the LM head.
  return 6 * (layers * (2 * h * q + 2 * h * kv) + h * static_cast<double>(c.vocab_size)) +
         layers * feed_forward_training_flops_per_token(c);
}

double sequence_mixing_training_flops_per_token(const ModelConfig& c, std::int64_t sequence_length) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = head_dim_of(c) * static_cast<double>(c.num_attention_heads);
  const double t = static_cast<double>(sequence_length);
  const double n = static_cast<double>(feed_forward_shape(c).routed_experts);
  const double layers = static_cast<double>(c.num_hidden_layers);
  // A token's query against on average T/2 keys (q K^T), and its weights over T/2 values:
  // 2 x 2 (T/2) q forward, x 3 with the backward. GQA repeats K and V to every query head, so q.
  double flops = 6 * layers * t * q;
  // Each of N slots mixes on average T/2 positions of h values (forward and backward: x 3).
  if (feed_forward_shape(c).soft_mixing) flops += 3 * layers * t * h * n;
  return flops;
}

double training_flops_per_token(const ModelConfig& c, std::int64_t sequence_length) {
  return weight_training_flops_per_token(c) + sequence_mixing_training_flops_per_token(c, sequence_length);
}

ActivationsPerToken activations_per_token(const ModelConfig& c, std::int64_t sequence_length) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = head_dim_of(c) * static_cast<double>(c.num_attention_heads);
  const double kv = head_dim_of(c) * static_cast<double>(c.num_key_value_heads);
  const FeedForwardShape s = feed_forward_shape(c);
  const double f = static_cast<double>(s.expert_ffn);
  const double n = static_cast<double>(s.routed_experts);
  // The input norm's input and output (2h), q, k, v (q + 2kv), rotated q and k (q + kv), the
  // attention output (q), the residual and the post-attention norm's input and output (2h).
  ActivationsPerToken a;
  a.block = 4 * h + 3 * q + 3 * kv;
  a.block_float32 = static_cast<double>(c.num_attention_heads);  // attention's log-sum-exp
  if (s.routed_experts == 0) {
    a.block += 4 * f;  // gate, up, SiLU and product
    return a;
  }
  // For each expert a position runs through: its gathered input and output (2h) and its gate,
  // up, SiLU and product (4f); a shared expert's 4 f_s; the router's float32 logits and
  // probabilities (2N), of which a checkpointed block keeps the logits (an output).
  const double sub_layers = static_cast<double>(s.sub_layers);
  a.block += sub_layers * (s.experts_per_position * (4 * f + 2 * h) + 4 * static_cast<double>(s.shared_ffn)) +
             (s.norm_between ? 2 * h : 0.0);
  a.block_float32 += sub_layers * 2 * n;
  a.kept_float32 = sub_layers * n;
  // The causal dispatch weights [B, N, T, T] and the masked logits they are the softmax of.
  if (s.soft_mixing) a.block_float32 += 2 * n * static_cast<double>(sequence_length);
  return a;
}

}  // namespace svmoe
