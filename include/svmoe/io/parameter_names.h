// The Hugging Face tensor names svmoe reads and writes (docs/formats.md), spelled in one place.
// They are also the module names of model/ (a test holds the two together):
//   Llama    model.layers.L.mlp.{gate,up,down}_proj.weight
//   Mixtral  model.layers.L.block_sparse_moe.gate.weight              the router [N, hidden]
//            model.layers.L.block_sparse_moe.experts.E.w{1,2,3}.weight  gate, down, up projection
//   fused Mixtral (newer transformers) model.layers.L.mlp.gate.weight,
//            model.layers.L.mlp.experts.gate_up_proj, model.layers.L.mlp.experts.down_proj
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace svmoe::parameter_names {

inline constexpr const char* kEmbedTokens = "model.embed_tokens.weight";
inline constexpr const char* kLmHead = "lm_head.weight";

// The three projections of a SwiGLU FFN; an expert's w1, w3, w2.
enum class FfnProjection { kGate, kUp, kDown };

std::string dense_ffn(std::int64_t layer, FfnProjection projection);
std::string router(std::int64_t layer);
std::string expert_ffn(std::int64_t layer, std::int64_t expert, FfnProjection projection);
std::string fused_router(std::int64_t layer);
std::string fused_experts_gate_up(std::int64_t layer);
std::string fused_experts_down(std::int64_t layer);

struct FfnName {
  std::int64_t layer = 0;
  std::int64_t expert = -1;  // -1: a dense FFN
  FfnProjection projection = FfnProjection::kGate;
};
std::optional<FfnName> parse_dense_ffn(const std::string& name);
std::optional<FfnName> parse_expert_ffn(const std::string& name);
std::optional<std::int64_t> parse_router(const std::string& name);  // the layer
bool is_router(const std::string& name);
// A buffer older checkpoints carry, recomputed rather than learned.
bool is_rotary_buffer(const std::string& name);

}  // namespace svmoe::parameter_names
