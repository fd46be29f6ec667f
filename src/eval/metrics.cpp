#include "svmoe/eval/metrics.h"

#include <torch/torch.h>

#include <cmath>

namespace svmoe {

// Welford's update: one pass, no catastrophic cancellation over millions of router items.
void MeanStd::add(double value) {
  ++count_;
  const double delta = value - mean_;
  mean_ += delta / static_cast<double>(count_);
  m2_ += delta * (value - mean_);
}

// Chan et al.'s pairwise merge of two streams' (count, mean, M2): the same result as adding
// the other's values one by one, up to rounding.
void MeanStd::add(const MeanStd& other) {
  if (other.count_ == 0) return;
  const double total = static_cast<double>(count_ + other.count_);
  const double delta = other.mean_ - mean_;
  m2_ += other.m2_ + delta * delta * static_cast<double>(count_) * static_cast<double>(other.count_) / total;
  mean_ += delta * static_cast<double>(other.count_) / total;
  count_ += other.count_;
}

double MeanStd::std() const { return count_ > 0 ? std::sqrt(m2_ / static_cast<double>(count_)) : 0.0; }

nlohmann::json MeanStd::to_json() const {
  if (count_ == 0) return {{"mean", nullptr}, {"std", nullptr}, {"count", 0}};
  return {{"mean", mean_}, {"std", std()}, {"count", count_}};
}

torch::Tensor average_ranks(const torch::Tensor& scores) {
  const auto x = scores.to(torch::kFloat64);
  const auto row = x.unsqueeze(-1);                               // [rows, N, 1]: x_i
  const auto other = x.unsqueeze(-2);                             // [rows, 1, N]: x_j
  const auto larger = (other > row).sum(-1).to(torch::kFloat64);  // how many beat x_i
  const auto equal = (other == row).sum(-1).to(torch::kFloat64);  // ties, x_i included
  // The tied group occupies ranks larger + 1 .. larger + equal; its average:
  return larger + (equal + 1.0) / 2.0;
}

// For one layer: rank the experts by router logit and by TF-IDF target at every kept position;
// where the router ranks an expert k-th (ties share an average rank, so a tie at the top is
// 1.5 and counts for neither k), add that expert's TF-IDF rank to CMR_k's items (SPEC.md §5).
void ConditionalMeanRank::add(const torch::Tensor& router_logits, const torch::Tensor& targets,
                              const torch::Tensor& has_target) {
  const auto keep = has_target.to(torch::kBool).to(torch::kCPU);
  if (!keep.any().item<bool>()) return;
  const auto router_ranks = average_ranks(router_logits.to(torch::kCPU).index({keep}));
  const auto target_ranks = average_ranks(targets.to(torch::kCPU).index({keep}));
  for (int k = 1; k <= 2; ++k) {
    const auto chosen = target_ranks.index({router_ranks.eq(static_cast<double>(k))}).contiguous();
    const auto* values = chosen.data_ptr<double>();
    MeanStd& into = k == 1 ? cmr1_ : cmr2_;
    for (std::int64_t i = 0; i < chosen.numel(); ++i) into.add(values[i]);
  }
}

// H = -sum_n p_n log p_n of p = softmax(logits), in float64 (nats; at most log N).
void add_router_entropy(const torch::Tensor& router_logits, MeanStd& entropy) {
  const auto log_p = torch::log_softmax(router_logits.to(torch::kFloat64), -1);
  const auto h = (-(log_p.exp() * log_p).sum(-1)).to(torch::kCPU).contiguous();
  const auto* values = h.data_ptr<double>();
  for (std::int64_t i = 0; i < h.numel(); ++i) entropy.add(values[i]);
}

}  // namespace svmoe
