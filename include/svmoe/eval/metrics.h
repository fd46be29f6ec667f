// The paper's evaluation metrics (SPEC.md §5) as accumulators over a stream of documents:
// perplexity per document, conditional mean rank CMR_k and router entropy S_RL. Each is
// reported as mean +- std (population std) over its items.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace svmoe {

// Mean and standard deviation of a stream of numbers (Welford; population std).
class MeanStd {
 public:
  void add(double value);
  void add(const MeanStd& other);  // merges another stream
  std::uint64_t count() const { return count_; }
  double mean() const { return mean_; }
  double std() const;
  nlohmann::json to_json() const;  // {"mean", "std", "count"}; mean and std null when empty

 private:
  std::uint64_t count_ = 0;
  double mean_ = 0.0, m2_ = 0.0;
};

// Ranks along the last dimension, 1 = largest, tied values sharing the average of their ranks
// (scipy's rankdata(-x, method="average")). [rows, N] -> float64 [rows, N].
torch::Tensor average_ranks(const torch::Tensor& scores);

// CMR_k = E[ r^TFIDF_n | r^RL_n = k ] over all (position, layer, n) with r^RL_n = k, for
// k = 1, 2 (SPEC.md §5); positions whose input token has no TF-IDF target are left out.
class ConditionalMeanRank {
 public:
  // router_logits [positions, N] of one layer; targets [positions, N] (the input tokens' TF-IDF
  // vectors) and has_target [positions] bool.
  void add(const torch::Tensor& router_logits, const torch::Tensor& targets, const torch::Tensor& has_target);
  const MeanStd& cmr(int k) const { return k == 1 ? cmr1_ : cmr2_; }

 private:
  MeanStd cmr1_, cmr2_;
};

// S_RL: the entropy (nats) of softmax(router logits), one item per (position, layer).
void add_router_entropy(const torch::Tensor& router_logits, MeanStd& entropy);

}  // namespace svmoe
