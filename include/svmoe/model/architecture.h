// The causal-LM architectures svmoe builds, one descriptor row each (docs/moe.md;
// docs/architecture.md, "Adding an MoE architecture"):
//   kLlama         dense: a SwiGLU FFN a layer                        (transformers' LlamaForCausalLM)
//   kMixtral       N experts routed top-k a layer                     (MixtralForCausalLM)
//   kQwen2Moe      Mixtral's routing plus a shared expert behind sigmoid(g . x)   (Qwen2MoeForCausalLM)
//   kCartesianMoe  two routed sub-layers a layer, a residual and norm between     (svmoe's own)
//   kSoftMoe       every expert on every position, slots mixed from the prefix   (svmoe's own)
// A row owns what is plain data: config.json's model_type and class name, the keys it spells its
// sizes with, where its FFN block sits among the checkpoint's tensors, how the block mixes its
// experts. What differs in behaviour (the block a layer builds, config.json's extra fields, the
// merge plan, inspect's description) is a `switch (architecture)` without `default`, so a new
// enumerator makes the compiler list every place that must handle it. The arithmetic (parameters,
// FLOPs, activation memory) is in model/architecture_arithmetic.h, one implementation for inspect,
// plan and bench.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "svmoe/config/enums.h"

namespace svmoe {

enum class Architecture { kLlama, kMixtral, kQwen2Moe, kCartesianMoe, kSoftMoe };

// How a layer's feed-forward block mixes its experts.
enum class ExpertMixing {
  kDense,  // no experts: one FFN
  kTopK,   // each token goes to the top-k experts of its router's softmax (dropless)
  kSoft,   // each expert sees a causal mixture of the prefix (a slot), each position mixes all slots
};

struct ArchitectureRow {
  const char* model_type;  // config.json "model_type"
  const char* class_name;  // config.json "architectures"[0]: transformers' class, or svmoe's own
  // Whether transformers and vLLM have a class for it (svmoe's own formats load only in svmoe).
  bool loads_in_transformers;
  ExpertMixing mixing;
  // Routed MoE sub-layers a layer, each with its own router and experts: 0 (dense), 1, or 2
  // (CartesianMoE's A and B).
  int routed_sub_layers;
  // The layer's FFN block among the checkpoint's tensors: model.layers.L.<ffn_key>.
  const char* ffn_key;
  // config.json's keys for the routed-expert count and one routed expert's FFN size.
  const char* experts_key;
  const char* expert_ffn_key;
  // The experts' projections are named as a Llama MLP's (gate_proj, up_proj, down_proj) rather
  // than Mixtral's (w1, w3, w2).
  bool llama_expert_names;
  // A shared expert, where the config has one, sits behind a sigmoid gate (Qwen2-MoE) rather than
  // being added as it is (CartesianMoE).
  bool gated_shared_expert;
  // A load-balancing loss applies (a soft MoE routes no token away: nothing to balance).
  bool load_balances;
};

// The row of `architecture`.
const ArchitectureRow& architecture_row(Architecture architecture);
// The architecture whose model_type is `model_type`, if svmoe builds one.
std::optional<Architecture> architecture_of_model_type(std::string_view model_type);
// Every model_type svmoe reads, for error messages: "llama, mixtral, ...".
std::string known_model_types();
// Every architecture, in declaration order (for tests that check each row).
constexpr Architecture kArchitectures[] = {Architecture::kLlama, Architecture::kMixtral, Architecture::kQwen2Moe,
                                           Architecture::kCartesianMoe, Architecture::kSoftMoe};

inline bool is_moe(Architecture a) { return architecture_row(a).mixing != ExpertMixing::kDense; }

// The architecture a merge writes (SPEC.md §4, stage 2; docs/moe.md): merge.moe_kind, and
// whether merge.shared_expert gives each layer a shared expert.
Architecture merged_architecture(MoeKind kind, bool shared_expert);

}  // namespace svmoe
