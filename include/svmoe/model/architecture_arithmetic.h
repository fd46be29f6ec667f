// What a causal LM of any architecture (model/architecture.h) costs, counted once for
// `svmoe inspect` (parameters), `svmoe plan` (parameters, activation memory) and `svmoe bench`
// (FLOPs). h hidden, q = heads x head_dim, kv = KV heads x head_dim, V vocabulary, L layers,
// T sequence length; a layer's FFN is described by FeedForwardShape: s sub-layers of N routed
// experts of size f, each position running through a of them (a = 1 dense, k top-k, N soft), a
// shared expert of size f_s (0: none).
//
// Parameters:  V h (x2 untied) + L (attention + FFN + 2h norms) + h final norm
//   attention  2hq + 2h kv (+ q + 2kv biases on q, k, v; + h on o)
//   FFN        dense 3hf (+ 2f + h biases); a routed sub-layer N (3hf + h) [experts, router]
//              + 3h f_s [shared] + h [Qwen2-MoE's shared gate]; s sub-layers (+ h: CartesianMoE's
//              norm between)
// Training FLOPs a token, forward and backward (x 3 the forward's 2 per multiply-add; Kaplan et
// al. 2020 / PaLM's MFU), biases and norms left out. The weights a token multiplies with:
//   6 (L (2hq + 2h kv + s (3 a h f + h N + 3 h f_s + h [Qwen2-MoE's shared gate])) + h V)
// and the products that mix positions, counted for the causal half of the T x T square that a
// token reads (the model computes the whole square and masks the rest):
//   + 6 L T q                                                           [causal attention]
//   + 3 L T h N                                                         [soft: slots mix the prefix]
// Activations a token and block (docs/training.md, term by term), in elements of the compute
// dtype: 4h + 3q + 3kv, then 4f (dense) or per sub-layer a (4f + 2h) + 4 f_s, + 2h for
// CartesianMoE's norm; float32: the attention's log-sum-exps (heads), per sub-layer the router's
// logits and probabilities (2N), and a soft MoE's causal dispatch weights and their logits (2NT).
#pragma once

#include <cstdint>

#include "svmoe/model/model_config.h"

namespace svmoe {

// One layer's feed-forward block, as the arithmetic sees it.
struct FeedForwardShape {
  int sub_layers = 1;               // 1, or 2 (CartesianMoE's A and B)
  std::int64_t routed_experts = 0;  // N a sub-layer (0: dense)
  double experts_per_position = 1;  // a: 1 (dense), k (top-k), N (soft)
  std::int64_t expert_ffn = 0;      // f: one expert's (or the dense) FFN size
  std::int64_t shared_ffn = 0;      // f_s (0: no shared expert)
  bool shared_gate = false;         // Qwen2-MoE's sigmoid gate on the shared expert
  bool norm_between = false;        // CartesianMoE's RMSNorm between A and B
  bool soft_mixing = false;         // slots mixed over the prefix (Soft MoE)
};

FeedForwardShape feed_forward_shape(const ModelConfig& config);

std::int64_t parameter_count(const ModelConfig& config);
// The routers' weights: what stage 3 trains.
std::int64_t router_parameter_count(const ModelConfig& config);
// Training FLOPs per token at `sequence_length` (the MFU's numerator; formula above): the sum of
// the two parts below.
double training_flops_per_token(const ModelConfig& config, std::int64_t sequence_length);
// The weights' part, independent of the sequence length.
double weight_training_flops_per_token(const ModelConfig& config);
// The positions-mixing part (attention scores and values; a soft MoE's slots), causal half.
double sequence_mixing_training_flops_per_token(const ModelConfig& config, std::int64_t sequence_length);
// The part of it one layer's FFN block does: 6 s (a 3hf + hN + 3h f_s (+ h gated)).
double feed_forward_training_flops_per_token(const ModelConfig& config);

struct ActivationsPerToken {
  double block = 0;          // one block's activations, in elements of the compute dtype
  double block_float32 = 0;  // one block's float32 activations
  double kept_float32 = 0;   // a checkpointed block's float32 outputs besides its input: router logits
};
ActivationsPerToken activations_per_token(const ModelConfig& config, std::int64_t sequence_length);

}  // namespace svmoe
