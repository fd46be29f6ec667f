// The Switch/Mixtral load-balancing loss (SPEC.md §4, stage 4), before its coefficient alpha:
//   N * sum_k sum_n f_{k,n} * P_n
// with f_{k,n} the fraction of tokens whose k-th choice is expert n and P_n the mean router
// probability of expert n. A perfectly balanced router scores k.
#pragma once

#include <torch/types.h>

#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

// router_logits: per layer [tokens, experts].
torch::Tensor switch_load_balancing_loss(const std::vector<torch::Tensor>& router_logits, std::int64_t top_k,
                                         LoadBalancingPooling pooling = LoadBalancingPooling::kPooled);

}  // namespace svmoe
