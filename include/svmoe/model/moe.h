// The MoE layer of Hugging Face MixtralForCausalLM (SPEC.md §3): N SwiGLU experts and a
// bias-free linear router. Routing: p = softmax(router logits) over all experts (in float32),
// the top-k experts, their probabilities renormalised to sum 1, the weighted sum of their
// outputs. Dropless: every token is processed, no capacity limit.
// Qwen2MoeSparseMoeBlock adds an always-on shared expert behind a sigmoid gate (docs/moe.md):
//   y = sum_{j in top-k} w_j expert_j(x) + sigmoid(g . x) shared_expert(x)
// (the top-k weights renormalised only where norm_topk_prob says so).
// Submodule names are the checkpoint keys: Mixtral's block_sparse_moe.gate,
// .experts.{e}.w1/w2/w3; Qwen2-MoE's mlp.gate, .experts.{e}.{gate,up,down}_proj, .shared_expert,
// .shared_expert_gate.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <utility>

#include "svmoe/config/enums.h"
#include "svmoe/model/layers.h"
#include "svmoe/model/model_config.h"

namespace svmoe {

// The checkpoint names of an expert's projections: Mixtral's w1, w3, w2, or gate_proj, up_proj,
// down_proj (Qwen2-MoE's, as a Llama MLP's).
enum class ExpertNames { kMixtral, kLlama };

// One expert: w2(silu(w1 x) * w3 x), i.e. w1 = gate_proj, w3 = up_proj, w2 = down_proj.
class ExpertImpl : public torch::nn::Module {
 public:
  ExpertImpl(std::int64_t hidden_size, std::int64_t intermediate_size, ExpertNames names = ExpertNames::kMixtral);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};
};
TORCH_MODULE(Expert);

// How the experts run on their tokens (ExpertPath, config/enums.h); both give the same result
// (tests/model/test_moe.cpp). kLoop: one expert at a time on its gathered tokens (each expert's
// token count is read on the host). kGrouped: the (token, expert) pairs sorted by expert, then
// each projection as one grouped matrix product over all experts (compat::grouped_mm:
// at::_grouped_mm where LibTorch has it, with no host synchronisation). kAuto: grouped where that
// kernel applies, the loop otherwise.

struct MoeOutput {
  torch::Tensor hidden;         // [B, T, hidden]
  torch::Tensor router_logits;  // [B*T, experts], float32
};

// The MoE block of a Mixtral or Qwen2-MoE layer (and of each CartesianMoE sub-layer).
class SparseMoeBlockImpl : public torch::nn::Module {
 public:
  explicit SparseMoeBlockImpl(const ModelConfig& config);
  MoeOutput forward(const torch::Tensor& x);

  torch::nn::Linear gate{nullptr};  // the router: hidden -> experts, no bias
  torch::nn::ModuleList experts{nullptr};
  Mlp shared_expert{nullptr};                     // the always-on expert, where the config has one
  torch::nn::Linear shared_expert_gate{nullptr};  // Qwen2-MoE only: hidden -> 1, no bias
  // Auxiliary-loss-free balancing's per-expert bias [experts] (a buffer, zero unless trained
  // with lb: aux_free); it changes which experts are chosen, never their weights.
  torch::Tensor selection_bias;
  ExpertPath expert_path = ExpertPath::kAuto;
  // Stage 3's cheap gradient (train_router.detach_router_inputs): the router sees its input
  // detached and the block routes with detached logits, so a router learns from its own layer's
  // term only and no graph is kept through the frozen blocks. Values are unchanged.
  bool detach_router_input = false;

  std::int64_t top_k() const { return top_k_; }
  bool renormalises() const { return norm_topk_prob_; }

 private:
  // Both return sum_j weights[t, j] * expert_{experts[t, j]}(hidden[t]) for every token t.
  torch::Tensor run_experts_loop(const torch::Tensor& hidden, const torch::Tensor& experts,
                                 const torch::Tensor& weights);
  torch::Tensor run_experts_grouped(const torch::Tensor& hidden, const torch::Tensor& experts,
                                    const torch::Tensor& weights);

  std::int64_t top_k_;
  bool norm_topk_prob_ = true;
};
TORCH_MODULE(SparseMoeBlock);

// CartesianMoE (Su et al., NAACL 2025; docs/moe.md): a layer's FFN as two sequential MoE
// sub-layers A and B, each with N sub-experts routed top-k (plus an ungated shared expert where
// shared_expert_intermediate_size > 0), a residual and an RMSNorm between. With h the residual
// stream and x = post_attention_layernorm(h):
//   h1 = h + A(x),   y = h1 + B(intermediate_layernorm(h1))
// so each token's effective expert is a pair (a, b) of N^2. With one sub-expert a side this is
// two stacked pre-norm FFN blocks. Names: cartesian_moe.{a,b}.gate, .{a,b}.experts.{e}.w1/w2/w3,
// .{a,b}.shared_expert.{gate,up,down}_proj, cartesian_moe.intermediate_layernorm.
struct CartesianMoeOutput {
  torch::Tensor hidden;                            // y: the residual stream after the layer's FFN [B, T, hidden]
  torch::Tensor router_logits_a, router_logits_b;  // [B*T, experts] each, float32
};

class CartesianMoeBlockImpl : public torch::nn::Module {
 public:
  explicit CartesianMoeBlockImpl(const ModelConfig& config);
  CartesianMoeOutput forward(const torch::Tensor& residual, const torch::Tensor& normed);

  SparseMoeBlock a{nullptr}, b{nullptr};
  RMSNorm intermediate_layernorm{nullptr};
};
TORCH_MODULE(CartesianMoeBlock);

// Causal Soft MoE (Puigcerver et al. 2024, made causal; docs/moe.md). One slot per expert; L the
// router logits [B, T, S] (float32). Slot s at position t mixes the prefix, and position t mixes
// its slots' outputs:
//   dispatch  D_{t,s,u} = softmax over u <= t of L_{u,s}  (0 for u > t)
//   slot      xs_{t,s} = sum_{u <= t} D_{t,s,u} x_u
//   combine   y_t = sum_s softmax_s(L_{t,s}) expert_s(xs_{t,s})
// y_t reads x_1..x_t only. Every expert runs on every position: S / k times a top-k MoE's FFN
// work, and the dispatch weights are [B, S, T, T].
torch::Tensor causal_soft_dispatch(const torch::Tensor& router_logits);  // [B, T, S] -> [B, S, T, T]
torch::Tensor soft_moe_mixture(const torch::Tensor& x, const torch::Tensor& dispatch, const torch::Tensor& combine,
                               torch::nn::ModuleList experts);  // x [B, T, H], combine [B, T, S]

// Incremental decoding of the causal Soft MoE: each slot's dispatch softmax over the prefix as a
// running softmax (Milakov & Gimelshein 2018), so a new position costs O(S H) whatever the
// prefix: with m the running max of L_{u,s}, Z = sum_u exp(L_{u,s} - m) and
// N = sum_u exp(L_{u,s} - m) x_u, the slot is xs_{t,s} = N / Z. m and Z are float32 [B, S] (the
// router's dtype), N is [B, S, H] in the model's dtype.
struct SoftMoeState {
  torch::Tensor max, denominator, numerator;
};

// The causal Soft MoE block (model_type svmoe_soft_moe): Mixtral's router and experts and
// Mixtral's names (block_sparse_moe.gate, .experts.{e}.w1/w2/w3), mixed as causal_soft_dispatch
// and soft_moe_mixture say. No selection bias: no token is routed away, nothing to balance.
class SoftMoeBlockImpl : public torch::nn::Module {
 public:
  explicit SoftMoeBlockImpl(const ModelConfig& config);
  // x [B, T, hidden] (positions are mixed, so the batch and time axes must be there).
  MoeOutput forward(const torch::Tensor& x);
  // The same for a decoding step's new positions x [B, n, hidden], reading and extending `state`;
  // positions where `valid` [B, n] is false (left padding) leave the state as it was.
  MoeOutput forward_step(const torch::Tensor& x, const torch::Tensor& valid, SoftMoeState& state);

  torch::nn::Linear gate{nullptr};  // the router: hidden -> slots (one a expert), no bias
  torch::nn::ModuleList experts{nullptr};
  bool detach_router_input = false;  // as SparseMoeBlockImpl's
  // How many experts routing reports name per token (config num_experts_per_tok; all contribute).
  std::int64_t reported_experts = 1;
};
TORCH_MODULE(SoftMoeBlock);

// Top-k routing of router logits [tokens, experts]: the chosen experts [tokens, k] and their
// weights [tokens, k] (float32): p renormalised over the k (unless `renormalise` is false, as
// Qwen2-MoE's norm_topk_prob: false). With a `selection_bias` [experts] (auxiliary-loss-free
// balancing, Wang et al. 2024), the experts are the top-k of p + bias, and their weights still
// come from p alone.
struct Routing {
  torch::Tensor experts;
  torch::Tensor weights;
};
Routing route_top_k(const torch::Tensor& router_logits, std::int64_t top_k, const torch::Tensor& selection_bias = {},
                    bool renormalise = true);

// Tokens routed to each expert [experts] (int64), for load statistics and the bias update.
torch::Tensor expert_load(const Routing& routing, std::int64_t experts);

// Wang et al. 2024's update after a step: b_n += rate * sign(mean load - load_n), so an
// overloaded expert becomes less likely to be chosen and an idle one more.
void update_selection_bias(torch::Tensor& bias, const torch::Tensor& load, double rate);

// The experts each token went to and their weights, from a router's logits [tokens, experts], as
// the router's block chooses them: route_top_k with its top-k, selection bias and
// renormalisation, or for a soft block the k largest combine weights softmax(L_t) (every slot
// contributes; these are the ones that contribute most).
Routing routing_of_block(const torch::nn::Module& block, const torch::Tensor& router_logits);

// Sets the expert path of every MoE layer in `model` (a no-op for dense models).
void set_expert_path(torch::nn::Module& model, ExpertPath path);
// Sets detach_router_input of every MoE layer in `model`.
void set_detach_router_inputs(torch::nn::Module& model, bool detach);

}  // namespace svmoe
