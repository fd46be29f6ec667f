#include "svmoe/train/routing_statistics.h"

#include <torch/torch.h>

#include "svmoe/model/moe.h"
#include "svmoe/train/distributed.h"

namespace svmoe {

RoutingStatistics::RoutingStatistics(std::int64_t layers, std::int64_t experts, std::int64_t top_k)
    : layers_(layers),
      experts_(experts),
      top_k_(top_k),
      sums_(torch::zeros({layers * experts + layers + 1}, torch::kFloat64)) {}

void RoutingStatistics::add(const std::vector<torch::Tensor>& router_logits,
                            const std::vector<torch::Tensor>& selection_biases) {
  torch::NoGradGuard no_grad;
  auto loads = sums_.narrow(0, 0, layers_ * experts_).view({layers_, experts_});
  for (std::int64_t l = 0; l < layers_; ++l) {
    const auto logits = router_logits[l].detach().to(torch::kFloat32);
    const torch::Tensor bias =
        l < static_cast<std::int64_t>(selection_biases.size()) ? selection_biases[l] : torch::Tensor();
    const Routing routing = route_top_k(logits, top_k_, bias);
    loads[l].add_(expert_load(routing, experts_).to(torch::kCPU, torch::kFloat64));
    const auto log_p = torch::log_softmax(logits, -1);
    const double entropy = -(log_p.exp() * log_p).sum().item<double>();
    sums_[layers_ * experts_ + l] += entropy;
  }
  if (layers_ > 0) sums_[layers_ * experts_ + layers_] += static_cast<double>(router_logits[0].size(0));
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

nlohmann::json RoutingStatistics::to_json() const {
  nlohmann::json fractions = nlohmann::json::array(), entropies = nlohmann::json::array(),
                 ratios = nlohmann::json::array();
  const double n = std::max(1.0, tokens());
  const auto loads = load();
  for (std::int64_t l = 0; l < layers_; ++l) {
    const auto row = loads[l];
    const double total = std::max(1.0, row.sum().item<double>());
    nlohmann::json fraction = nlohmann::json::array();
    for (std::int64_t e = 0; e < experts_; ++e) fraction.push_back(row[e].item<double>() / total);
    fractions.push_back(fraction);
    entropies.push_back(sums_[layers_ * experts_ + l].item<double>() / n);
    const double low = row.min().item<double>();
    ratios.push_back(low > 0 ? nlohmann::json(row.max().item<double>() / low) : nlohmann::json(nullptr));
  }
  return {{"expert_fraction", fractions}, {"router_entropy", entropies}, {"max_min_load_ratio", ratios}};
}

}  // namespace svmoe
