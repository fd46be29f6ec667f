#include "svmoe/train/cross_entropy.h"

#include <torch/torch.h>

#include <algorithm>

namespace svmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr std::int64_t kLogitsPerChunk = std::int64_t{1} << 28;

// One chunk's float32 logits [n, V] and their logsumexp [n].
std::pair<torch::Tensor, torch::Tensor> chunk_logits(const torch::Tensor& hidden, const torch::Tensor& weight) {
  auto logits = torch::matmul(hidden, weight.t()).to(torch::kFloat32);
  auto normaliser = logits.logsumexp(-1);
  return {logits, normaliser};
}

torch::Tensor sum_of_token_losses(const torch::Tensor& logits, const torch::Tensor& normaliser,
                                  const torch::Tensor& targets) {
  return (normaliser - logits.gather(1, targets.unsqueeze(1)).squeeze(1)).sum();
}

// The loss without gradients (evaluation, or nothing to train before the head).
torch::Tensor loss_only(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                        std::int64_t chunk) {
  const auto rows = hidden.size(0);
  auto total = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
  for (std::int64_t begin = 0; begin < rows; begin += chunk) {
    const auto n = std::min(chunk, rows - begin);
    const auto [logits, normaliser] = chunk_logits(hidden.narrow(0, begin, n), weight);
    total += sum_of_token_losses(logits, normaliser, targets.narrow(0, begin, n));
  }
  return total / static_cast<double>(rows);
}

struct FusedLmHeadCrossEntropy : public torch::autograd::Function<FusedLmHeadCrossEntropy> {
  static torch::Tensor forward(AutogradContext* context, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, std::int64_t chunk) {
    const auto rows = hidden.size(0);
    const double scale = 1.0 / static_cast<double>(rows);
    auto total = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
    const bool want_hidden = hidden.requires_grad(), want_weight = weight.requires_grad();
    torch::Tensor hidden_grad, weight_grad;
    if (want_hidden) hidden_grad = torch::empty_like(hidden);
    if (want_weight) weight_grad = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
    for (std::int64_t begin = 0; begin < rows; begin += chunk) {
      const auto n = std::min(chunk, rows - begin);
      const auto h = hidden.narrow(0, begin, n);
      const auto y = targets.narrow(0, begin, n);
      auto [logits, normaliser] = chunk_logits(h, weight);
      total += sum_of_token_losses(logits, normaliser, y);
      // d(mean loss)/d(logits) = (softmax - onehot(y)) / N, built in place in the logits' memory.
      auto logits_grad = logits.sub_(normaliser.unsqueeze(1)).exp_();
      logits_grad.scatter_add_(1, y.unsqueeze(1), torch::full({n, 1}, -1.0f, logits_grad.options()));
      logits_grad = logits_grad.mul_(scale).to(hidden.scalar_type());
      if (want_hidden) hidden_grad.narrow(0, begin, n).copy_(torch::matmul(logits_grad, weight));
      if (want_weight) weight_grad.add_(torch::matmul(logits_grad.t(), h));
    }
    context->save_for_backward({hidden_grad, want_weight ? weight_grad.to(weight.scalar_type()) : weight_grad});
    return total * scale;
  }

  static variable_list backward(AutogradContext* context, variable_list output_grad) {
    const auto saved = context->get_saved_variables();
    const auto& upstream = output_grad[0];
    const auto scaled = [&](const torch::Tensor& grad) {
      return grad.defined() ? grad * upstream.to(grad.scalar_type()) : torch::Tensor();
    };
    return {scaled(saved[0]), scaled(saved[1]), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

std::int64_t lm_loss_chunk_rows(std::int64_t rows, std::int64_t vocab, std::int64_t asked) {
  const std::int64_t chosen =
      asked > 0 ? asked : std::max<std::int64_t>(1, kLogitsPerChunk / std::max<std::int64_t>(1, vocab));
  return std::max<std::int64_t>(1, std::min(chosen, rows));
}

torch::Tensor fused_lm_head_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                          const torch::Tensor& targets, std::int64_t chunk_rows) {
  const auto chunk = lm_loss_chunk_rows(hidden.size(0), weight.size(0), chunk_rows);
  const bool wants_grad = torch::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  if (!wants_grad) return loss_only(hidden, weight, targets, chunk);
  return FusedLmHeadCrossEntropy::apply(hidden, weight, targets, chunk);
}

}  // namespace svmoe
