#include "svmoe/train/routing_statistics.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "svmoe/model/moe.h"
#include "svmoe/train/distributed.h"

namespace svmoe {

// One float64 vector holds every sum, so that a rank's statistics are one all-reduce:
//   [0, L*E)          expert loads: top-k choices per (layer, expert)
//   [L*E, L*E + L)    per layer, the sum over positions of the router's entropy
//   [L*E + L]         positions seen
RoutingStatistics::RoutingStatistics(std::int64_t layers, std::int64_t experts, std::int64_t top_k)
    : layers_(layers),
      experts_(experts),
      top_k_(top_k),
      sums_(torch::zeros({layers * experts + layers + 1}, torch::kFloat64)) {}

void RoutingStatistics::add(const std::vector<torch::Tensor>& router_logits,
                            const std::vector<torch::Tensor>& selection_biases) {
  torch::NoGradGuard no_grad;
  if (layers_ == 0 || router_logits.empty()) return;
  // The sums stay where the router logits are: adding to them never waits for the GPU.
  if (sums_.device() != router_logits[0].device()) sums_ = sums_.to(router_logits[0].device());
  auto loads = sums_.narrow(0, 0, layers_ * experts_).view({layers_, experts_});
  auto entropy_sums = sums_.narrow(0, layers_ * experts_, layers_);
  for (std::int64_t l = 0; l < layers_; ++l) {
    const auto logits = router_logits[l].detach().to(torch::kFloat32);
    const torch::Tensor bias =
        l < static_cast<std::int64_t>(selection_biases.size()) ? selection_biases[l] : torch::Tensor();
    const Routing routing = route_top_k(logits, top_k_, bias);
    loads[l].add_(expert_load(routing, experts_).to(torch::kFloat64));
    const auto log_p = torch::log_softmax(logits, -1);
    entropy_sums[l].add_(-(log_p.exp() * log_p).sum().to(torch::kFloat64));
  }
  sums_[layers_ * experts_ + layers_].add_(static_cast<double>(router_logits[0].size(0)));
}

void RoutingStatistics::all_reduce(const ProcessGroup& group) { group.all_reduce_sum({sums_}); }

void RoutingStatistics::reset() {
  if (sums_.defined()) sums_.zero_();
}

double RoutingStatistics::tokens() const {
  return sums_.defined() ? sums_[layers_ * experts_ + layers_].item<double>() : 0.0;
}

torch::Tensor RoutingStatistics::load() const {
  return sums_.narrow(0, 0, layers_ * experts_).view({layers_, experts_}).clone();
}

// Per layer: each expert's share of the choices, the mean router entropy per position, and
// max/min load (null when an expert was never chosen: the ratio is unbounded).
nlohmann::json RoutingStatistics::to_json() const {
  nlohmann::json fractions = nlohmann::json::array(), entropies = nlohmann::json::array(),
                 ratios = nlohmann::json::array();
  const auto host = sums_.to(torch::kCPU);  // one read from the device
  const auto* sums = host.data_ptr<double>();
  const double n = std::max(1.0, sums[layers_ * experts_ + layers_]);
  for (std::int64_t l = 0; l < layers_; ++l) {
    const double* row = sums + l * experts_;
    const double total = std::max(1.0, std::accumulate(row, row + experts_, 0.0));
    nlohmann::json fraction = nlohmann::json::array();
    for (std::int64_t e = 0; e < experts_; ++e) fraction.push_back(row[e] / total);
    fractions.push_back(fraction);
    entropies.push_back(sums[layers_ * experts_ + l] / n);
    const double low = *std::min_element(row, row + experts_);
    const double high = *std::max_element(row, row + experts_);
    ratios.push_back(low > 0 ? nlohmann::json(high / low) : nlohmann::json(nullptr));
  }
  return {{"expert_fraction", fractions}, {"router_entropy", entropies}, {"max_min_load_ratio", ratios}};
}

}  // namespace svmoe
