#include "svmoe/model/architecture.h"

namespace svmoe {

// One row per architecture. The switch has no `default`: a new enumerator fails to compile
// (-Wswitch, an error under SVMOE_WERROR) until it has a row.
const ArchitectureRow& architecture_row(Architecture architecture) {
  // clang-format off
  //                                     model_type             class_name                      transformers mixing              sub-layers ffn_key             experts_key          expert_ffn_key           llama names gated shared LB
  static constexpr ArchitectureRow kLlamaRow{"llama",               "LlamaForCausalLM",             true,  ExpertMixing::kDense, 0, "mlp",              "",                  "intermediate_size",     false, false, false};
  static constexpr ArchitectureRow kMixtralRow{"mixtral",           "MixtralForCausalLM",           true,  ExpertMixing::kTopK,  1, "block_sparse_moe", "num_local_experts", "intermediate_size",     false, false, true};
  // Qwen2-MoE keeps the dense model's "mlp" key for its MoE block; its intermediate_size is the
  // FFN of mlp_only_layers (which svmoe refuses), moe_intermediate_size the experts'.
  static constexpr ArchitectureRow kQwen2MoeRow{"qwen2_moe",        "Qwen2MoeForCausalLM",          true,  ExpertMixing::kTopK,  1, "mlp",              "num_experts",       "moe_intermediate_size", true,  true,  true};
  static constexpr ArchitectureRow kCartesianRow{"svmoe_cartesian_moe", "SvmoeCartesianMoeForCausalLM", false, ExpertMixing::kTopK,  2, "cartesian_moe",   "num_local_experts", "intermediate_size",     false, false, true};
  static constexpr ArchitectureRow kSoftRow{"svmoe_soft_moe",       "SvmoeSoftMoeForCausalLM",      false, ExpertMixing::kSoft,  1, "block_sparse_moe", "num_local_experts", "intermediate_size",     false, false, false};
  // clang-format on
  switch (architecture) {
    case Architecture::kLlama:
      return kLlamaRow;
    case Architecture::kMixtral:
      return kMixtralRow;
    case Architecture::kQwen2Moe:
      return kQwen2MoeRow;
    case Architecture::kCartesianMoe:
      return kCartesianRow;
    case Architecture::kSoftMoe:
      return kSoftRow;
  }
  return kLlamaRow;  // unreachable: every enumerator returns above
}

std::optional<Architecture> architecture_of_model_type(std::string_view model_type) {
  for (const Architecture a : kArchitectures) {
    if (model_type == architecture_row(a).model_type) return a;
  }
  return std::nullopt;
}

std::string known_model_types() {
  std::string list;
  for (const Architecture a : kArchitectures) {
    if (!list.empty()) list += ", ";
    list += architecture_row(a).model_type;
  }
  return list;
}

Architecture merged_architecture(MoeKind kind, bool shared_expert) {
  switch (kind) {
    case MoeKind::kSparse:
      return shared_expert ? Architecture::kQwen2Moe : Architecture::kMixtral;
    case MoeKind::kSoft:
      return Architecture::kSoftMoe;  // settings refuse a shared expert with it
    case MoeKind::kCartesian:
      return Architecture::kCartesianMoe;  // its shared experts are ungated, in the same format
  }
  return Architecture::kMixtral;  // unreachable
}

}  // namespace svmoe
