#include "svmoe/eval/ensemble_weights.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace svmoe {

std::vector<double> ensemble_weights(const torch::Tensor& token_counts, const torch::Tensor& subdomain_tfidf,
                                     const std::vector<std::vector<std::int64_t>>& expert_subdomains,
                                     EnsembleWeighting weighting) {
  // In float64: the weights are summed over subdomains and compared across runs in reports.
  const torch::Tensor rows = subdomain_tfidf.to(torch::kFloat64);  // [N, V]
  const torch::Tensor x = token_counts.to(torch::kFloat64);
  const double norm = x.norm().item<double>();
  const torch::Tensor similarity = rows.matmul(x) / std::max(norm, 1e-300);  // s_k
  const auto* s = similarity.data_ptr<double>();
  const auto subdomains = rows.size(0);

  // Unnormalised weight per expert: the tfidf reading adds the similarities of the subdomains the
  // expert covers, the distance reading the distances of those it does not (header's formula).
  std::vector<double> weights;
  for (const auto& covered : expert_subdomains) {
    double w = 0.0;
    for (std::int64_t k = 0; k < subdomains; ++k) {
      const bool in_expert = std::find(covered.begin(), covered.end(), k) != covered.end();
      if (weighting == EnsembleWeighting::kTfidf && in_expert) w += std::max(0.0, s[k]);
      if (weighting == EnsembleWeighting::kDistance && !in_expert) w += std::sqrt(std::max(0.0, 2.0 - 2.0 * s[k]));
    }
    weights.push_back(w);
  }
  // Z: all-zero weights (a document like no subdomain) fall back to the uniform ensemble.
  double total = 0.0;
  for (const double w : weights) total += w;
  for (double& w : weights) w = total > 0 ? w / total : 1.0 / static_cast<double>(weights.size());
  return weights;
}

}  // namespace svmoe
