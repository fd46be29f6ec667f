// The BTM ensemble's expert weights for one document (docs/eval.md). With x the document's token
// counts, c_k subdomain k's TF-IDF row (L2-normalised; tfidf.safetensors) and C_e the subdomains
// expert e was trained on (config/expert_coverage.h):
//   s_k = x . c_k / |x|                  cosine similarity to subdomain k
//   d_k = |x / |x| - c_k| = sqrt(2 - 2 s_k)   distance to subdomain k's centre
//   tfidf     w_e = sum_{k in C_e} max(0, s_k) / Z          (uniform when every s_k <= 0)
//   distance  w_e = sum_{k not in C_e} d_k / Z              (Monju: with three clusters and an
//             expert per pair, w_AB = d_C / (d_A + d_B + d_C); with one subdomain per expert,
//             the farther the other subdomains, the more weight)
// Z makes the weights sum to one.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

std::vector<double> ensemble_weights(const torch::Tensor& token_counts, const torch::Tensor& subdomain_tfidf,
                                     const std::vector<std::vector<std::int64_t>>& expert_subdomains,
                                     EnsembleWeighting weighting);

}  // namespace svmoe
