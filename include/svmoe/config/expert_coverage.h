// The subdomains each dense expert is trained on (train_experts.coverage, eval.btm.coverage):
//   subdomains  N experts, C_n = {n}                      (BTX's and the paper's)
//   pairs       N(N-1)/2 experts, C_k = the k-th {i, j}, i < j, lexicographic: {0,1}, {0,2}, ...
//               (Monju: an expert per pair of clusters)
#pragma once

#include <cstdint>
#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

std::vector<std::vector<std::int64_t>> expert_subdomains(ExpertCoverage coverage, std::int64_t num_subdomains);

}  // namespace svmoe
