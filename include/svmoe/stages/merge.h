// svmoe merge (SPEC.md §4, stage 2): dense Llama models -> one Mixtral MoE, by merge.method
// (docs/upcycling.md). BTX: N trained experts of one architecture; in every block, expert n's FFN
// becomes MoE expert n and every other weight (embeddings, attention, norms, LM head) is the
// element-wise mean over the experts, computed in float32 and stored in their dtype. naive,
// noise, drop_upcycling: N copies of one dense model's FFN, transformed per expert
// (stages/upcycling.h; btx_drop_upcycling does the same to trained experts), other weights the
// model's own. The routers are drawn with the seed (merge.router_init). With merge.shared_expert
// the MoE is a Qwen2-MoE: each layer also gets a shared expert (the base model's FFN or the mean
// of the inputs' FFNs) behind a zero sigmoid gate, and zero q/k/v biases (docs/moe.md). With
// merge.moe_kind cartesian each expert's FFN is split in halves between the sub-layers A and B.
// It streams: one output tensor exists at a time, and the inputs are memory-mapped.
#pragma once

#include <filesystem>

#include "svmoe/config/settings.h"
#include "svmoe/model/model_config.h"

namespace svmoe {

struct MergeResult {
  ModelConfig config;  // the MoE's
  std::uint64_t parameters = 0;
};

MergeResult run_merge(const MergeSettings& settings, const RuntimeSettings& runtime);

// The architecture of the MoE that merging `experts` copies of `dense` makes.
ModelConfig merged_moe_config(const ModelConfig& dense, std::int64_t experts, const MergeSettings& settings);

}  // namespace svmoe
