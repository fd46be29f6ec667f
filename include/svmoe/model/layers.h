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
// x: [B, H, T, D] -> x * cos + rotate_half(x) * sin
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& rotary);

// Grouped-query causal self-attention.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rotary);  // [B, T, hidden]

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
