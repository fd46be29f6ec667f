// What a training stage minimises (SPEC.md §4) and what it reports besides. The trainer is
// the same for every stage; the objective is what differs:
//   LanguageModelObjective      stages 1 and 4: next-token cross-entropy, plus for MoE models
//                               an optional load-balancing term (none | switch | aux_free);
//   RouterSupervisionObjective  stage 3: L_SvMoE, the routers against the TF-IDF targets.
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/train/load_balancing.h"
#include "svmoe/train/routing_statistics.h"

namespace svmoe {

class ProcessGroup;

struct ObjectiveTerms {
  torch::Tensor loss;                          // the scalar the optimizer minimises
  std::map<std::string, torch::Tensor> parts;  // detached scalars to log (lm_loss, lb_loss, router_loss, ...)
};

class TrainingObjective {
 public:
  virtual ~TrainingObjective() = default;
  // One micro-batch [B, T + 1] (inputs are the first T tokens). In training mode the objective
  // also gathers the statistics it reports.
  virtual ObjectiveTerms compute(CausalLM& model, const torch::Tensor& batch) = 0;
  // The part that validation reports ("lm_loss": also as perplexity).
  virtual std::string validation_part() const = 0;
  // After each optimizer step, on every rank alike (aux_free's bias update).
  virtual void after_step(CausalLM& /*model*/, const ProcessGroup& /*group*/) {}
  // The statistics gathered since the last call, summed over ranks, for metrics.jsonl; resets.
  virtual nlohmann::json take_metrics(const ProcessGroup& /*group*/) { return nlohmann::json::object(); }
  // A few words for the progress line (from the last take_metrics).
  virtual std::string summary() const { return {}; }
};

// Stages 1 and 4: next-token cross-entropy ("lm_loss"); for MoE models, the LB term
// ("lb_loss", before alpha) and routing health every logging step, with a warning when an
// expert gets almost nothing for several logging intervals in a row (a dead expert).
class LanguageModelObjective : public TrainingObjective {
 public:
  LanguageModelObjective(const ModelConfig& config, LoadBalancingSettings settings);
  ObjectiveTerms compute(CausalLM& model, const torch::Tensor& batch) override;
  std::string validation_part() const override { return "lm_loss"; }
  void after_step(CausalLM& model, const ProcessGroup& group) override;
  nlohmann::json take_metrics(const ProcessGroup& group) override;
  std::string summary() const override { return summary_; }

 private:
  LoadBalancingSettings settings_;
  bool moe_ = false;
  RoutingStatistics interval_;                     // since the last logging step
  RoutingStatistics step_;                         // this optimizer step (aux_free)
  std::vector<std::vector<int>> quiet_intervals_;  // per layer and expert: logging intervals with almost no load
  std::string summary_;
};

// Stage 3 (SPEC.md §4): L_SvMoE = sum over layers of l_CE(softmax(router logits), TFIDF_t) at
// each input token t, averaged over the tokens that have a target ("router_loss" is reported
// per token and layer: that sum / layers). l_CE is one of the paper's two readings
// (train_router.loss), with p = softmax(RL) and T the target:
//   soft_cross_entropy          - sum_n T_n log p_n             (minimum at p = T)
//   softmax_then_cross_entropy  - sum_n T_n log softmax(p)_n    (PyTorch's cross_entropy(p, T))
// Tokens without a target are left out (kMask) or given the uniform target (kUniform). The LM
// head is not computed. Reports per layer: router loss, agreement of the router's top-1 with the
// TF-IDF argmax, router entropy; and the targets' mean entropy (soft_cross_entropy's floor).
// l_CE per token: [tokens, N] router logits and targets -> [tokens] (float32).
torch::Tensor router_cross_entropy(const torch::Tensor& router_logits, const torch::Tensor& targets, RouterLoss loss);

class RouterSupervisionObjective : public TrainingObjective {
 public:
  // targets: float32 [vocab, experts], rows summing to 1; has_target: bool [vocab].
  RouterSupervisionObjective(torch::Tensor targets, torch::Tensor has_target, MissingTarget missing, RouterLoss loss,
                             std::int64_t layers);
  ObjectiveTerms compute(CausalLM& model, const torch::Tensor& batch) override;
  std::string validation_part() const override { return "router_loss"; }
  nlohmann::json take_metrics(const ProcessGroup& group) override;
  std::string summary() const override { return summary_; }

 private:
  torch::Tensor targets_, has_target_, target_argmax_;
  RouterLoss loss_;
  std::int64_t layers_;
  // Per layer: loss sums, top-1 agreements, entropy sums; then the count of targeted tokens and
  // the sum of their targets' entropies (the floor of the loss).
  torch::Tensor sums_;
  std::string summary_;
};

}  // namespace svmoe
