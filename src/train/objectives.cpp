#include "svmoe/train/objectives.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/safetensors.h"
#include "svmoe/train/cross_entropy.h"
#include "svmoe/train/distributed.h"
#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

double mean_of(const nlohmann::json& values) {
  double total = 0;
  std::size_t n = 0;
  for (const auto& v : values) {
    if (v.is_number()) {
      total += v.get<double>();
      ++n;
    }
  }
  return n > 0 ? total / static_cast<double>(n) : 0.0;
}

// An expert that gets less than a tenth of its fair share for this many logging intervals in
// a row is reported as (possibly) dead.
constexpr double kQuietShare = 0.1;
constexpr int kQuietIntervals = 3;

}  // namespace

LanguageModelObjective::LanguageModelObjective(const ModelConfig& config, LoadBalancingSettings settings)
    : settings_(std::move(settings)), moe_(config.is_moe()) {
  if (moe_ && !architecture_row(config.architecture).load_balances && settings_.method != LoadBalancingMethod::kNone) {
    throw ConfigError(std::string("load balancing '") + enum_name(settings_.method) + "' was asked for a " +
                          config.model_type() +
                          " model, which runs every expert on every position: there is no top-k choice to balance",
                      "set finetune.load_balancing.method: none (in svmoe run, ask for rows without _lb)");
  }
  if (moe_) {
    interval_ = RoutingStatistics(config.num_routers(), config.num_local_experts, config.num_experts_per_tok);
    step_ = RoutingStatistics(config.num_routers(), config.num_local_experts, config.num_experts_per_tok);
    quiet_intervals_.assign(config.num_routers(), std::vector<int>(config.num_local_experts, 0));
  } else if (settings_.method != LoadBalancingMethod::kNone) {
    throw ConfigError(std::string("load balancing '") + enum_name(settings_.method) +
                          "' was asked for a dense model, which has no routers",
                      "set finetune.load_balancing.method: none, or train an MoE model (svmoe merge writes one)");
  }
}

ObjectiveTerms LanguageModelObjective::compute(CausalLM& model, const torch::Tensor& batch) {
  const auto length = batch.size(1) - 1;
  std::vector<torch::Tensor> router_logits;
  // The ids were checked on the CPU (the trainer's batches); no device read here.
  const auto hidden = model->model->forward(batch.narrow(1, 0, length), router_logits);
  const auto lm_loss = fused_lm_head_cross_entropy(hidden.reshape({-1, hidden.size(-1)}), model->output_embedding(),
                                                   batch.narrow(1, 1, length).reshape({-1}));
  ObjectiveTerms terms{lm_loss, {{"lm_loss", lm_loss.detach()}}};
  if (!moe_) return terms;

  const std::int64_t top_k = model->config().num_experts_per_tok;
  if (settings_.method == LoadBalancingMethod::kSwitch) {
    const auto lb_loss = switch_load_balancing_loss(router_logits, top_k, settings_.pooling);
    terms.loss = lm_loss + settings_.alpha * lb_loss;
    terms.parts["lb_loss"] = lb_loss.detach();
  } else {
    // Logged with every method, so that the balance of runs can be compared.
    torch::NoGradGuard no_grad;
    terms.parts["lb_loss"] = switch_load_balancing_loss(router_logits, top_k, settings_.pooling);
  }
  if (model->is_training()) {
    const auto biases = selection_biases(*model);
    interval_.add(router_logits, biases);
    if (settings_.method == LoadBalancingMethod::kAuxFree) step_.add(router_logits, biases);
  }
  return terms;
}

void LanguageModelObjective::after_step(CausalLM& model, const ProcessGroup& group) {
  if (!moe_ || settings_.method != LoadBalancingMethod::kAuxFree) return;
  step_.all_reduce(group);
  const auto loads = step_.load();
  auto biases = selection_biases(*model);
  for (std::size_t l = 0; l < biases.size(); ++l) {
    update_selection_bias(biases[l], loads[static_cast<std::int64_t>(l)], settings_.aux_free_rate);
  }
  step_.reset();
}

nlohmann::json LanguageModelObjective::take_metrics(const ProcessGroup& group) {
  if (!moe_) return nlohmann::json::object();
  interval_.all_reduce(group);
  nlohmann::json routing = interval_.to_json();
  interval_.reset();
  const auto& fractions = routing["expert_fraction"];
  for (std::size_t l = 0; l < fractions.size(); ++l) {
    const double fair = 1.0 / static_cast<double>(fractions[l].size());
    for (std::size_t e = 0; e < fractions[l].size(); ++e) {
      const double share = fractions[l][e].get<double>();
      int& quiet = quiet_intervals_[l][e];
      quiet = share < kQuietShare * fair ? quiet + 1 : 0;
      if (quiet == kQuietIntervals && group.is_main()) {
        spdlog::warn(
            "routing: layer {} expert {} got {:.2f}% of the routing choices (fair share {:.1f}%) for {} logging "
            "intervals in a row: it may be dead; consider finetune.load_balancing.method: switch or aux_free",
            l, e, 100.0 * share, 100.0 * fair, kQuietIntervals);
      }
    }
  }
  double worst_ratio = 0;
  bool unbounded = false;
  for (const auto& r : routing["max_min_load_ratio"]) {
    if (r.is_null())
      unbounded = true;
    else
      worst_ratio = std::max(worst_ratio, r.get<double>());
  }
  summary_ = fmt::format("entropy {:.3f} max/min load {}", mean_of(routing["router_entropy"]),
                         unbounded ? std::string("inf") : fmt::format("{:.3g}", worst_ratio));
  return {{"routing", routing}};
}

torch::Tensor router_cross_entropy(const torch::Tensor& router_logits, const torch::Tensor& targets, RouterLoss loss) {
  const auto log_p = torch::log_softmax(router_logits.to(torch::kFloat32), -1);
  switch (loss) {
    case RouterLoss::kSoftCrossEntropy:
      return -(targets * log_p).sum(-1);
    case RouterLoss::kSoftmaxThenCrossEntropy:
      // cross_entropy's own log_softmax over the probabilities: p lies in [0, 1], so the second
      // softmax is flat and its optimum puts p's mass on the largest targets (docs/training.md).
      return -(targets * torch::log_softmax(log_p.exp(), -1)).sum(-1);
  }
  return {};
}

RouterSupervisionObjective::RouterSupervisionObjective(torch::Tensor targets, torch::Tensor has_target,
                                                       MissingTarget missing, RouterLoss loss, std::int64_t layers)
    : targets_(targets.to(torch::kFloat32)), has_target_(has_target.to(torch::kBool)), loss_(loss), layers_(layers) {
  if (missing == MissingTarget::kUniform) {
    // Tokens without a target get 1/N for every expert, and all tokens count.
    const auto uniform = torch::full({targets_.size(1)}, 1.0 / static_cast<double>(targets_.size(1)));
    targets_.index_put_({has_target_.logical_not()}, uniform);
    has_target_ = torch::ones_like(has_target_);
  }
  target_argmax_ = targets_.argmax(-1);
  sums_ = torch::zeros({3 * layers_ + 2}, torch::kFloat64);
}

ObjectiveTerms RouterSupervisionObjective::compute(CausalLM& model, const torch::Tensor& batch) {
  const auto length = batch.size(1) - 1;
  const auto input = batch.narrow(1, 0, length);
  std::vector<torch::Tensor> router_logits;
  model->model->forward(input, router_logits);  // the LM head is not needed
  if (static_cast<std::int64_t>(router_logits.size()) != layers_) {
    throw Error("router training needs an MoE model: this one has " + std::to_string(router_logits.size()) +
                    " routed layers, not " + std::to_string(layers_),
                "train the routers of a model svmoe merge wrote");
  }
  const auto ids = input.reshape({-1});
  const auto device = router_logits.front().device();
  if (targets_.device() != device) {
    targets_ = targets_.to(device);
    has_target_ = has_target_.to(device);
    target_argmax_ = target_argmax_.to(device);
  }
  const auto target = targets_.index_select(0, ids);                       // [tokens, N]
  const auto mask = has_target_.index_select(0, ids).to(torch::kFloat32);  // [tokens]
  const auto count = mask.sum().clamp_min(1.0);
  auto loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  std::vector<torch::Tensor> layer_stats;
  for (std::int64_t l = 0; l < layers_; ++l) {
    const auto cross_entropy = router_cross_entropy(router_logits[l], target, loss_);  // [tokens]
    loss = loss + (cross_entropy * mask).sum() / count;
    if (model->is_training()) {
      torch::NoGradGuard no_grad;
      const auto log_p = torch::log_softmax(router_logits[l].to(torch::kFloat32).detach(), -1);
      const auto agree = log_p.argmax(-1).eq(target_argmax_.index_select(0, ids)).to(torch::kFloat32);
      const auto entropy = -(log_p.exp() * log_p).sum(-1);
      layer_stats.push_back(torch::stack({(cross_entropy * mask).sum(), (agree * mask).sum(), (entropy * mask).sum()}));
    }
  }
  if (!layer_stats.empty()) {
    torch::NoGradGuard no_grad;
    // Summed where the model runs: nothing here waits for the GPU (take_metrics reads them).
    if (sums_.device() != device) sums_ = sums_.to(device);
    const auto stats = torch::stack(layer_stats).to(torch::kFloat64);  // [L, 3]
    sums_.narrow(0, 0, 3 * layers_).add_(stats.t().reshape({-1}));
    sums_[3 * layers_].add_(mask.sum().to(torch::kFloat64));
    // The targets' own entropy: the least soft_cross_entropy can reach.
    const auto target_entropy = -(target * target.clamp_min(1e-30).log()).sum(-1);
    sums_[3 * layers_ + 1].add_((target_entropy * mask).sum().to(torch::kFloat64));
  }
  const auto router_loss = loss.detach() / static_cast<double>(layers_);
  return {loss, {{"router_loss", router_loss}}};
}

nlohmann::json RouterSupervisionObjective::take_metrics(const ProcessGroup& group) {
  group.all_reduce_sum({sums_});
  const auto host = sums_.to(torch::kCPU);
  const auto* sums = host.data_ptr<double>();
  const double n = std::max(1.0, sums[3 * layers_]);
  nlohmann::json losses = nlohmann::json::array(), agreement = nlohmann::json::array(),
                 entropy = nlohmann::json::array();
  for (std::int64_t l = 0; l < layers_; ++l) {
    losses.push_back(sums[l] / n);
    agreement.push_back(sums[layers_ + l] / n);
    entropy.push_back(sums[2 * layers_ + l] / n);
  }
  const double target_entropy = sums[3 * layers_ + 1] / n;
  sums_.zero_();
  summary_ = fmt::format("top-1 agreement {:.3f}", mean_of(agreement));
  return {{"router",
           {{"router_loss", losses},
            {"top1_agreement", agreement},
            {"router_entropy", entropy},
            {"targeted_tokens", n},
            {"target_entropy", target_entropy}}}};
}

}  // namespace svmoe
