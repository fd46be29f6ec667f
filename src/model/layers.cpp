#include "svmoe/model/layers.h"

#include <torch/torch.h>

#include "svmoe/model/compat.h"

namespace svmoe {

RMSNormImpl::RMSNormImpl(std::int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({size}));
}

// y = w * x / sqrt(mean(x^2) + eps), with the statistics in float32 and the product cast back
// before the weight, in transformers' LlamaRMSNorm order (so bf16 outputs match it bit for bit).
torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const auto x32 = x.to(torch::kFloat32);
  const auto normalised = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normalised.to(x.scalar_type());
}

namespace {

// positions [...] (float32) -> cos and sin [..., D]: angle_i = position * theta^(-2i/D), with
// inv_freq computed in float32 as transformers does.
RotaryTables rotary_at(std::int64_t head_dim, double theta, const torch::Tensor& positions, torch::ScalarType dtype) {
  const auto exponents = torch::arange(0, head_dim, 2, positions.options().dtype(torch::kInt64)).to(torch::kFloat32) /
                         static_cast<double>(head_dim);
  const auto inv_freq = 1.0 / torch::pow(theta, exponents);  // [D/2]
  const auto freqs = positions.unsqueeze(-1) * inv_freq;     // [..., D/2]
  const auto angles = torch::cat({freqs, freqs}, -1);        // [..., D]
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

}  // namespace

RotaryTables rotary_tables(std::int64_t head_dim, double theta, std::int64_t length, torch::ScalarType dtype,
                           torch::Device device) {
  return rotary_at(head_dim, theta, torch::arange(length, torch::TensorOptions().dtype(torch::kFloat32).device(device)),
                   dtype);  // [T, D]
}

RotaryTables rotary_tables_at(std::int64_t head_dim, double theta, const torch::Tensor& positions,
                              torch::ScalarType dtype) {
  const auto tables = rotary_at(head_dim, theta, positions.to(torch::kFloat32), dtype);  // [B, T, D]
  return {tables.cos.unsqueeze(1), tables.sin.unsqueeze(1)};
}

// RoPE in the "rotate half" layout of the Hugging Face Llama: dimension i pairs with i + D/2
// (not the interleaved pairs of the original paper), x' = x cos + rotate_half(x) sin.
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& rotary) {
  const auto half = x.size(-1) / 2;
  const auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * rotary.cos + rotated * rotary.sin;  // tables broadcast over [B, H]
}

// Grouped-query attention: heads query heads, kv_heads key/value heads (kv_heads == heads is
// plain multi-head attention). attention_bias puts biases on all four projections (Llama's
// key); qkv_bias on q, k and v only (Qwen2's).
SelfAttentionImpl::SelfAttentionImpl(const ModelConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  const auto linear = [&](std::int64_t in, std::int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  };
  const bool qkv_bias = c.attention_bias || c.qkv_bias;
  q_proj = register_module("q_proj", linear(c.hidden_size, heads_ * head_dim_, qkv_bias));
  k_proj = register_module("k_proj", linear(c.hidden_size, kv_heads_ * head_dim_, qkv_bias));
  v_proj = register_module("v_proj", linear(c.hidden_size, kv_heads_ * head_dim_, qkv_bias));
  o_proj = register_module("o_proj", linear(heads_ * head_dim_, c.hidden_size, c.attention_bias));
}

// x [B, T, hidden] -> [B, T, hidden]. Without a decoding step: causal attention over x's own
// positions (training, scoring). With one: x holds the new positions from step->start on; their
// keys and values go into the cache (sized for step->capacity positions on first use), and the
// queries attend to every cached position under step->attention_mask (padding of batched prompts).
torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const RotaryTables& rotary, KeyValueCache* cache,
                                         const DecodingStep* step) {
  const auto batch = x.size(0);
  const auto length = x.size(1);
  auto split_heads = [&](const torch::Tensor& t, std::int64_t heads) {
    return t.view({batch, length, heads, head_dim_}).transpose(1, 2);  // [B, heads, T, D]
  };
  auto q = apply_rotary(split_heads(q_proj(x), heads_), rotary);
  auto k = apply_rotary(split_heads(k_proj(x), kv_heads_), rotary);
  auto v = split_heads(v_proj(x), kv_heads_);
  if (cache != nullptr) {  // store the new positions' keys and values, then read all so far
    if (!cache->key.defined()) {
      cache->key = torch::zeros({batch, kv_heads_, step->capacity, head_dim_}, k.options());
      cache->value = torch::zeros_like(cache->key);
    }
    cache->key.narrow(2, step->start, length).copy_(k);
    cache->value.narrow(2, step->start, length).copy_(v);
    k = cache->key.narrow(2, 0, step->start + length);
    v = cache->value.narrow(2, 0, step->start + length);
  }
  if (kv_heads_ != heads_) {  // each KV head serves heads_/kv_heads_ consecutive query heads
    k = k.repeat_interleave(heads_ / kv_heads_, 1);
    v = v.repeat_interleave(heads_ / kv_heads_, 1);
  }
  const auto attended = step != nullptr ? compat::masked_attention(q, k, v, step->attention_mask)
                                        : compat::causal_attention(q, k, v);  // [B, H, T, D]
  return o_proj(attended.transpose(1, 2).reshape({batch, length, heads_ * head_dim_}));
}

MlpImpl::MlpImpl(std::int64_t hidden_size, std::int64_t intermediate_size, bool bias) {
  gate_proj = register_module("gate_proj",
                              torch::nn::Linear(torch::nn::LinearOptions(hidden_size, intermediate_size).bias(bias)));
  up_proj = register_module("up_proj",
                            torch::nn::Linear(torch::nn::LinearOptions(hidden_size, intermediate_size).bias(bias)));
  down_proj = register_module("down_proj",
                              torch::nn::Linear(torch::nn::LinearOptions(intermediate_size, hidden_size).bias(bias)));
}

// SwiGLU: down(silu(gate(x)) * up(x)), Llama's FFN and each expert's.
torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

}  // namespace svmoe
