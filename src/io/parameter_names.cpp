#include "svmoe/io/parameter_names.h"

#include <regex>

// Every tensor name is built here from its parts (layer, block key, expert, projection), and the
// parse_* functions are their inverses, so that a checkpoint's names and the modules' registered
// names (model/) cannot drift apart: both come from this file and the architecture rows.
namespace svmoe::parameter_names {
namespace {

std::string layer_prefix(std::int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

const char* dense_projection_name(FfnProjection projection) {
  switch (projection) {
    case FfnProjection::kGate:
      return "gate_proj";
    case FfnProjection::kUp:
      return "up_proj";
    case FfnProjection::kDown:
      break;
  }
  return "down_proj";
}

// Mixtral's expert weights: w1 = gate, w2 = down, w3 = up.
const char* expert_projection_name(FfnProjection projection) {
  switch (projection) {
    case FfnProjection::kGate:
      return "w1";
    case FfnProjection::kUp:
      return "w3";
    case FfnProjection::kDown:
      break;
  }
  return "w2";
}

// "gate", "up" or "down" (of gate_proj, up_proj, down_proj).
FfnProjection projection_named(const std::string& name) {
  if (name == "gate") return FfnProjection::kGate;
  return name == "up" ? FfnProjection::kUp : FfnProjection::kDown;
}

// The MoE block's key (the architecture's: Qwen2-MoE keeps the dense model's "mlp").
std::string moe_block(const ModelConfig& moe, std::int64_t layer) {
  return layer_prefix(layer) + architecture_row(moe.architecture).ffn_key + ".";
}

std::string cartesian_sub_layer(std::int64_t layer, std::int64_t sub_layer) {
  return layer_prefix(layer) + "cartesian_moe." + (sub_layer == 0 ? "a." : "b.");
}

}  // namespace

std::string dense_ffn(std::int64_t layer, FfnProjection projection) {
  return layer_prefix(layer) + "mlp." + dense_projection_name(projection) + ".weight";
}

std::string router(const ModelConfig& moe, std::int64_t layer) { return moe_block(moe, layer) + "gate.weight"; }

std::string expert_ffn(const ModelConfig& moe, std::int64_t layer, std::int64_t expert, FfnProjection projection) {
  return moe_block(moe, layer) + "experts." + std::to_string(expert) + "." +
         (architecture_row(moe.architecture).llama_expert_names ? dense_projection_name(projection)
                                                                : expert_projection_name(projection)) +
         ".weight";
}

// Qwen2-MoE's shared expert is a dense FFN inside the MoE block, with its own sigmoid gate
// ([1, hidden]) beside it (transformers' Qwen2MoeSparseMoeBlock).
std::string shared_expert_ffn(std::int64_t layer, FfnProjection projection) {
  return layer_prefix(layer) + "mlp.shared_expert." + dense_projection_name(projection) + ".weight";
}

std::string shared_expert_gate(std::int64_t layer) { return layer_prefix(layer) + "mlp.shared_expert_gate.weight"; }

// Qwen2 attention has biases on q, k and v (not o); a Llama-derived MoE written as Qwen2-MoE
// gets zero ones so that it computes what the Llama did.
std::vector<std::string> qkv_biases(std::int64_t layer) {
  std::vector<std::string> names;
  for (const char* p : {"q", "k", "v"}) names.push_back(layer_prefix(layer) + "self_attn." + p + "_proj.bias");
  return names;
}

// CartesianMoE: two routed sub-layers a and b per layer, each with its own router, experts and
// optional shared expert, with an RMSNorm between them (docs/moe.md).
std::string cartesian_router(std::int64_t layer, std::int64_t sub_layer) {
  return cartesian_sub_layer(layer, sub_layer) + "gate.weight";
}

std::string cartesian_expert_ffn(std::int64_t layer, std::int64_t sub_layer, std::int64_t expert,
                                 FfnProjection projection) {
  return cartesian_sub_layer(layer, sub_layer) + "experts." + std::to_string(expert) + "." +
         expert_projection_name(projection) + ".weight";
}

std::string cartesian_shared_expert_ffn(std::int64_t layer, std::int64_t sub_layer, FfnProjection projection) {
  return cartesian_sub_layer(layer, sub_layer) + "shared_expert." + dense_projection_name(projection) + ".weight";
}

std::string cartesian_norm(std::int64_t layer) {
  return layer_prefix(layer) + "cartesian_moe.intermediate_layernorm.weight";
}

std::string post_attention_norm(std::int64_t layer) { return layer_prefix(layer) + "post_attention_layernorm.weight"; }

// Newer transformers saves Mixtral's (and Qwen2-MoE's) experts fused per layer: the router under
// mlp.gate, the experts stacked as gate_up_proj [N, 2f, h] and down_proj [N, h, f]. svmoe reads
// that layout (from_fused_experts, io/hf_checkpoint.cpp) and writes the classic one.
std::string fused_router(std::int64_t layer) { return layer_prefix(layer) + "mlp.gate.weight"; }
std::string fused_experts_gate_up(std::int64_t layer) { return layer_prefix(layer) + "mlp.experts.gate_up_proj"; }
std::string fused_experts_down(std::int64_t layer) { return layer_prefix(layer) + "mlp.experts.down_proj"; }

std::optional<FfnName> parse_dense_ffn(const std::string& name) {
  static const std::regex pattern(R"(model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  return FfnName{std::stoll(match[1].str()), -1, projection_named(match[2].str())};
}

// The two expert spellings: Mixtral's w1/w2/w3 and Qwen2-MoE's Llama-style projection names.
std::optional<FfnName> parse_expert_ffn(const std::string& name) {
  static const std::regex mixtral(R"(model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w([123])\.weight)");
  static const std::regex qwen(R"(model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight)");
  std::smatch match;
  if (std::regex_match(name, match, mixtral)) {
    const char w = match[3].str()[0];
    return FfnName{std::stoll(match[1].str()), std::stoll(match[2].str()),
                   w == '1'   ? FfnProjection::kGate
                   : w == '3' ? FfnProjection::kUp
                              : FfnProjection::kDown};
  }
  if (!std::regex_match(name, match, qwen)) return std::nullopt;
  return FfnName{std::stoll(match[1].str()), std::stoll(match[2].str()), projection_named(match[3].str())};
}

// A router of any architecture: Mixtral's block_sparse_moe.gate, Qwen2-MoE's mlp.gate (a dense
// model has no mlp.gate, its FFN's gate is mlp.gate_proj) and CartesianMoE's two sub-layers.
std::optional<std::int64_t> parse_router(const std::string& name) {
  static const std::regex pattern(R"(model\.layers\.(\d+)\.(block_sparse_moe|mlp|cartesian_moe\.[ab])\.gate\.weight)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  return std::stoll(match[1].str());
}

bool is_router(const std::string& name) { return parse_router(name).has_value(); }

// Older checkpoints saved RoPE's inverse frequencies; they are computed from rope_theta, not loaded.
bool is_rotary_buffer(const std::string& name) { return name.find(".rotary_emb.inv_freq") != std::string::npos; }

}  // namespace svmoe::parameter_names
