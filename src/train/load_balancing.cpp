#include "svmoe/train/load_balancing.h"

#include <torch/torch.h>

#include "svmoe/util/error.h"

namespace svmoe {
namespace {

// One set of routing decisions: logits [tokens, experts].
torch::Tensor switch_loss(const torch::Tensor& logits, std::int64_t top_k) {
  const auto experts = logits.size(-1);
  const auto probabilities = torch::softmax(logits.to(torch::kFloat32), -1);  // [tokens, N]
  const auto chosen = std::get<1>(probabilities.topk(top_k, -1));             // [tokens, k]
  const auto mask = torch::one_hot(chosen, experts).to(torch::kFloat32);      // [tokens, k, N]
  const auto tokens_per_expert = mask.mean(0);                                // f: [k, N]
  const auto probability_per_expert = probabilities.mean(0);                  // P: [N]
  return (tokens_per_expert * probability_per_expert.unsqueeze(0)).sum() * static_cast<double>(experts);
}

}  // namespace

torch::Tensor switch_load_balancing_loss(const std::vector<torch::Tensor>& router_logits, std::int64_t top_k,
                                         LoadBalancingPooling pooling) {
  if (router_logits.empty()) throw Error("load-balancing loss of a model without router logits");
  if (pooling == LoadBalancingPooling::kPooled) return switch_loss(torch::cat(router_logits, 0), top_k);
  auto total = torch::zeros({}, torch::kFloat32).to(router_logits.front().device());
  for (const auto& logits : router_logits) total = total + switch_loss(logits, top_k);
  return total / static_cast<double>(router_logits.size());
}

}  // namespace svmoe
