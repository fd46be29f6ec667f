#include "svmoe/train/optimizer.h"

#include <torch/torch.h>

#include <cmath>

#include "svmoe/util/error.h"

namespace svmoe {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWOptions options) : options_(options) {
  for (auto& [name, p] : parameters) {
    if (!p.requires_grad()) continue;
    parameters_.emplace_back(name, p);
    // Moments in float32 whatever the parameter's dtype.
    exp_avg_.push_back(torch::zeros_like(p, torch::TensorOptions().dtype(torch::kFloat32)));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::TensorOptions().dtype(torch::kFloat32)));
    const bool needs_master = options_.master_weights && p.scalar_type() != torch::kFloat32;
    master_.push_back(needs_master ? p.detach().to(torch::kFloat32).clone() : torch::Tensor());
  }
}

void AdamW::step(double learning_rate) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor& param = parameters_[i].second;
    if (!param.grad().defined()) continue;
    const auto g = param.grad().to(torch::kFloat32);
    torch::Tensor& p = master_[i].defined() ? master_[i] : param;
    if (p.dim() > 1 && options_.weight_decay > 0) p.mul_(1.0 - learning_rate * options_.weight_decay);
    exp_avg_[i].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    const auto denominator = (exp_avg_sq_[i].sqrt() / std::sqrt(correction2)).add_(options_.eps);
    const auto update = exp_avg_[i] / denominator * (learning_rate / correction1);
    p.sub_(update.to(p.scalar_type()));
    if (master_[i].defined()) param.copy_(master_[i]);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : parameters_) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

std::vector<NamedTensor> AdamW::state() const {
  std::vector<NamedTensor> state = {{"step", torch::tensor({steps_}, torch::kInt64)}};
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    state.push_back({"exp_avg." + parameters_[i].first, exp_avg_[i]});
    state.push_back({"exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i]});
    if (master_[i].defined()) state.push_back({"master." + parameters_[i].first, master_[i]});
  }
  return state;
}

void AdamW::load_state(const SafetensorsFile& file) {
  torch::NoGradGuard no_grad;
  steps_ = file.tensor("step").item<std::int64_t>();
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    std::vector<std::pair<const char*, torch::Tensor*>> moments = {{"exp_avg.", &exp_avg_[i]},
                                                                   {"exp_avg_sq.", &exp_avg_sq_[i]}};
    if (master_[i].defined()) moments.emplace_back("master.", &master_[i]);
    for (const auto& [prefix, target] : moments) {
      const std::string name = prefix + parameters_[i].first;
      if (!file.contains(name)) {
        throw FormatError("'" + file.path().string() + "' has no optimizer state '" + name + "'",
                          "the checkpoint was written for another model or another set of trained parameters");
      }
      target->copy_(file.tensor(name));
    }
  }
}

double clip_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  torch::Tensor total;
  for (const auto& [name, p] : parameters) {
    if (!p.grad().defined()) continue;
    const auto squares = p.grad().to(torch::kFloat32).pow(2).sum();
    total = total.defined() ? total + squares : squares;
  }
  if (!total.defined()) return 0.0;
  const double norm = std::sqrt(total.item<double>());
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [name, p] : parameters) {
      if (p.grad().defined()) p.grad().mul_(scale);
    }
  }
  return norm;
}

double learning_rate_at(std::int64_t step, std::int64_t total, std::int64_t warmup, double peak, double min_ratio,
                        const std::string& schedule) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (schedule == "constant") return peak;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  const double floor = peak * min_ratio;
  if (schedule == "linear") return floor + (peak - floor) * (1.0 - progress);
  if (schedule == "cosine") return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
  throw ConfigError("learning-rate schedule '" + schedule + "' is not known", "use cosine, linear or constant");
}

}  // namespace svmoe
