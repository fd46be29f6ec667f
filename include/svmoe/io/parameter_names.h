// The Hugging Face tensor names svmoe reads and writes (docs/formats.md), spelled in one place.
// They are also the module names of model/ (a test holds the two together):
//   Llama    model.layers.L.mlp.{gate,up,down}_proj.weight
//   Mixtral  model.layers.L.block_sparse_moe.gate.weight              the router [N, hidden]
//            model.layers.L.block_sparse_moe.experts.E.w{1,2,3}.weight  gate, down, up projection
//   Qwen2-MoE model.layers.L.mlp.gate.weight                           the router [N, hidden]
//            model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight
//            model.layers.L.mlp.shared_expert.{gate,up,down}_proj.weight, mlp.shared_expert_gate.weight [1, hidden]
//            model.layers.L.self_attn.{q,k,v}_proj.bias
//   CartesianMoE (svmoe's own) model.layers.L.cartesian_moe.{a,b}.gate.weight, .{a,b}.experts.E.w{1,2,3}.weight,
//            .{a,b}.shared_expert.{gate,up,down}_proj.weight, cartesian_moe.intermediate_layernorm.weight
//   fused Mixtral (newer transformers) model.layers.L.mlp.gate.weight,
//            model.layers.L.mlp.experts.gate_up_proj, model.layers.L.mlp.experts.down_proj
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "svmoe/model/model_config.h"

namespace svmoe::parameter_names {

inline constexpr const char* kEmbedTokens = "model.embed_tokens.weight";
inline constexpr const char* kLmHead = "lm_head.weight";

// The three projections of a SwiGLU FFN; an expert's w1, w3, w2.
enum class FfnProjection { kGate, kUp, kDown };

std::string dense_ffn(std::int64_t layer, FfnProjection projection);
// The router and the routed experts of `moe`'s format (Mixtral's names unless it is Qwen2-MoE).
std::string router(const ModelConfig& moe, std::int64_t layer);
std::string expert_ffn(const ModelConfig& moe, std::int64_t layer, std::int64_t expert, FfnProjection projection);
std::string shared_expert_ffn(std::int64_t layer, FfnProjection projection);
std::string shared_expert_gate(std::int64_t layer);
std::vector<std::string> qkv_biases(std::int64_t layer);  // q, k, v
// A CartesianMoE layer's sub-layer 0 (A) or 1 (B).
std::string cartesian_router(std::int64_t layer, std::int64_t sub_layer);
std::string cartesian_expert_ffn(std::int64_t layer, std::int64_t sub_layer, std::int64_t expert,
                                 FfnProjection projection);
std::string cartesian_shared_expert_ffn(std::int64_t layer, std::int64_t sub_layer, FfnProjection projection);
std::string cartesian_norm(std::int64_t layer);
std::string post_attention_norm(std::int64_t layer);
std::string fused_router(std::int64_t layer);
std::string fused_experts_gate_up(std::int64_t layer);
std::string fused_experts_down(std::int64_t layer);

struct FfnName {
  std::int64_t layer = 0;
  std::int64_t expert = -1;  // -1: a dense FFN
  FfnProjection projection = FfnProjection::kGate;
};
std::optional<FfnName> parse_dense_ffn(const std::string& name);
std::optional<FfnName> parse_expert_ffn(const std::string& name);   // either format's
std::optional<std::int64_t> parse_router(const std::string& name);  // the layer; either format's
bool is_router(const std::string& name);
// A buffer older checkpoints carry, recomputed rather than learned.
bool is_rotary_buffer(const std::string& name);

}  // namespace svmoe::parameter_names
