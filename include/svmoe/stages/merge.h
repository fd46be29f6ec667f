// svmoe merge (SPEC.md §4, stage 2; BTX): N dense experts of one architecture -> one Mixtral
// MoE. In every block, expert n's FFN becomes MoE expert n; every other weight (embeddings,
// attention, norms, LM head) is the element-wise mean over the experts, computed in float32 and
// stored in the experts' dtype; the routers are drawn from normal(0, std) with the seed.
// It streams: one output tensor exists at a time, and the experts are memory-mapped.
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
