#include "svmoe/io/parameter_names.h"

#include <regex>

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

}  // namespace

std::string dense_ffn(std::int64_t layer, FfnProjection projection) {
  return layer_prefix(layer) + "mlp." + dense_projection_name(projection) + ".weight";
}

std::string router(std::int64_t layer) { return layer_prefix(layer) + "block_sparse_moe.gate.weight"; }

std::string expert_ffn(std::int64_t layer, std::int64_t expert, FfnProjection projection) {
  return layer_prefix(layer) + "block_sparse_moe.experts." + std::to_string(expert) + "." +
         expert_projection_name(projection) + ".weight";
}

std::string fused_router(std::int64_t layer) { return layer_prefix(layer) + "mlp.gate.weight"; }
std::string fused_experts_gate_up(std::int64_t layer) { return layer_prefix(layer) + "mlp.experts.gate_up_proj"; }
std::string fused_experts_down(std::int64_t layer) { return layer_prefix(layer) + "mlp.experts.down_proj"; }

std::optional<FfnName> parse_dense_ffn(const std::string& name) {
  static const std::regex pattern(R"(model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  const std::string p = match[2].str();
  return FfnName{std::stoll(match[1].str()), -1,
                 p == "gate" ? FfnProjection::kGate
                 : p == "up" ? FfnProjection::kUp
                             : FfnProjection::kDown};
}

std::optional<FfnName> parse_expert_ffn(const std::string& name) {
  static const std::regex pattern(R"(model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w([123])\.weight)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  const char w = match[3].str()[0];
  return FfnName{std::stoll(match[1].str()), std::stoll(match[2].str()),
                 w == '1'   ? FfnProjection::kGate
                 : w == '3' ? FfnProjection::kUp
                            : FfnProjection::kDown};
}

std::optional<std::int64_t> parse_router(const std::string& name) {
  static const std::regex pattern(R"(model\.layers\.(\d+)\.block_sparse_moe\.gate\.weight)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  return std::stoll(match[1].str());
}

bool is_router(const std::string& name) { return parse_router(name).has_value(); }

bool is_rotary_buffer(const std::string& name) { return name.find(".rotary_emb.inv_freq") != std::string::npos; }

}  // namespace svmoe::parameter_names
