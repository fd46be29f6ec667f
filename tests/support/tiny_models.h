// Small seeded models of every architecture, for tests that run a model rather than load one.
#pragma once

#include <cstdint>

#include "svmoe/model/causal_lm.h"

namespace svmoe::test {

// 2 layers, hidden 16, FFN 24, 4 heads over 2 KV heads (grouped-query), head_dim 4; MoE: 4
// experts top-2 (Qwen2-MoE with q/k/v biases, a gated shared expert of 24 and norm_topk_prob
// false; CartesianMoE with a shared expert of 12 a sub-layer). tiny_model: weights N(0, 0.1) from
// `seed`, in eval mode, in `dtype`.
ModelConfig tiny_config(Architecture architecture, std::int64_t vocab_size);
CausalLM tiny_model(Architecture architecture, std::int64_t vocab_size, std::uint64_t seed,
                    torch::ScalarType dtype = torch::kFloat64);

}  // namespace svmoe::test
