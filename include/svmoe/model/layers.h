// The building blocks of a Llama block, numerically as Hugging Face transformers computes them.
// Submodules carry the Hugging Face key names (q_proj, gate_proj, ...).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "svmoe/model/model_config.h"

namespace svmoe {

// y = weight * (x / sqrt(mean(x^2) + eps)), the normalisation in float32.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// cos and sin of the default rotary embedding for positions 0..T-1: [T, head_dim] each.
struct RotaryTables {
  torch::Tensor cos;
  torch::Tensor sin;
};
RotaryTables rotary_tables(std::int64_t head_dim, double theta, std::int64_t length, torch::ScalarType dtype,
                           torch::Device device);
// The same tables at given positions [B, T] (int64; left-padded rows start later): [B, 1, T, D]
// each, broadcasting over the heads.
RotaryTables rotary_tables_at(std::int64_t head_dim, double theta, const torch::Tensor& positions,
                              torch::ScalarType dtype);
// x: [B, H, T, D] -> x * cos + rotate_half(x) * sin
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& rotary);

// One step of incremental decoding (model/causal_lm.h, DecodingCache), as every layer sees it:
// `length` new positions after `start` cached ones, in a cache of `capacity` positions.
struct DecodingStep {
  std::int64_t start = 0;
  std::int64_t capacity = 0;
  torch::Tensor attention_mask;  // [B, 1, new, start + new] bool: true where a query may read a key
  torch::Tensor valid;           // [B, new] bool: false at left padding
};

// The keys and values of the positions decoded so far (after the rotary embedding, before the
// KV heads are repeated): [B, kv_heads, capacity, head_dim] each, filled up to the step's start.
struct KeyValueCache {
  torch::Tensor key, value;
};

// Grouped-query causal self-attention.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const ModelConfig& config);
  // [B, T, hidden]. With a cache, x holds the step's new positions only: their keys and values
  // are stored, and the queries read every cached key the step's mask allows.
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rotary, KeyValueCache* cache = nullptr,
                        const DecodingStep* step = nullptr);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  std::int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(SelfAttention);

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(std::int64_t hidden_size, std::int64_t intermediate_size, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace svmoe
