// Routing health of an MoE model over a stretch of tokens: per layer, the fraction of routing
// choices each expert got, the mean router entropy (nats, of softmax over all experts; SPEC.md
// §5's S_RL) and the max/min load ratio. The trainer logs them every logging step; aux_free
// balancing reads each step's loads from them.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace svmoe {

class ProcessGroup;

class RoutingStatistics {
 public:
  RoutingStatistics() = default;
  RoutingStatistics(std::int64_t layers, std::int64_t experts, std::int64_t top_k);

  // router_logits: per layer [tokens, experts]; selection_biases: per layer [experts] or
  // undefined (aux_free's bias changes which experts are chosen).
  void add(const std::vector<torch::Tensor>& router_logits, const std::vector<torch::Tensor>& selection_biases);
  void all_reduce(const ProcessGroup& group);  // sums over data-parallel ranks
  void reset();

  bool empty() const { return tokens() == 0; }
  double tokens() const;       // tokens seen (per layer)
  torch::Tensor load() const;  // [layers, experts] float64: routing choices per expert
  // {"expert_fraction": [[...]], "router_entropy": [...], "max_min_load_ratio": [...]}, one entry
  // per layer; a ratio is null where some expert got nothing.
  nlohmann::json to_json() const;

 private:
  std::int64_t layers_ = 0, experts_ = 0, top_k_ = 0;
  // One float64 buffer, so that one collective sums it: [layers * experts] loads, then
  // [layers] entropy sums, then the token count.
  torch::Tensor sums_;
};

}  // namespace svmoe
