// The fused LM-head cross-entropy against the unfused definition (LibTorch's cross_entropy on
// the whole logits), in value and gradients, for every chunking.
#include "svmoe/train/cross_entropy.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>

namespace svmoe {
namespace {

struct LossAndGradients {
  torch::Tensor loss, hidden_grad, weight_grad;
};

template <typename Loss>
LossAndGradients differentiate(const torch::Tensor& hidden, const torch::Tensor& weight, Loss&& loss_of) {
  const auto h = hidden.detach().clone().requires_grad_(true);
  const auto w = weight.detach().clone().requires_grad_(true);
  const auto loss = loss_of(h, w);
  (loss * 0.7).backward();  // an upstream gradient other than 1
  return {loss.detach(), h.grad(), w.grad()};
}

LossAndGradients unfused(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
  return differentiate(hidden, weight, [&](const torch::Tensor& h, const torch::Tensor& w) {
    return torch::nn::functional::cross_entropy(torch::linear(h, w).to(torch::kFloat32), targets);
  });
}

LossAndGradients fused(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                       std::int64_t chunk) {
  return differentiate(hidden, weight, [&](const torch::Tensor& h, const torch::Tensor& w) {
    return fused_lm_head_cross_entropy(h, w, targets, chunk);
  });
}

}  // namespace

TEST(FusedLmHeadCrossEntropy, EqualsTheUnfusedLossAndGradientsForEveryChunking) {
  torch::manual_seed(11);
  const auto hidden = torch::randn({10, 6});
  const auto weight = torch::randn({13, 6});
  const auto targets = torch::randint(13, {10}, torch::kInt64);
  const LossAndGradients expected = unfused(hidden, weight, targets);
  for (const std::int64_t chunk : {1, 3, 7, 10, 0}) {
    const LossAndGradients got = fused(hidden, weight, targets, chunk);
    EXPECT_NEAR(got.loss.item<double>(), expected.loss.item<double>(), 1e-5) << chunk;
    EXPECT_TRUE(torch::allclose(got.hidden_grad, expected.hidden_grad, 1e-5, 1e-6)) << chunk;
    EXPECT_TRUE(torch::allclose(got.weight_grad, expected.weight_grad, 1e-5, 1e-6)) << chunk;
  }
}

// In bf16 neither head is exact; the fused one must be as close to the float32 truth (the same
// bf16 inputs, computed in float32) as the unfused one, to within bf16's rounding.
TEST(FusedLmHeadCrossEntropy, IsAsAccurateAsTheUnfusedHeadInBfloat16) {
  torch::manual_seed(12);
  const auto hidden = torch::randn({32, 16}).to(torch::kBFloat16);
  const auto weight = (torch::randn({50, 16}) * 0.3).to(torch::kBFloat16);
  const auto targets = torch::randint(50, {32}, torch::kInt64);
  const LossAndGradients truth = unfused(hidden.to(torch::kFloat32), weight.to(torch::kFloat32), targets);
  const LossAndGradients plain = unfused(hidden, weight, targets);
  const LossAndGradients got = fused(hidden, weight, targets, 5);
  EXPECT_EQ(got.hidden_grad.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(got.weight_grad.scalar_type(), torch::kBFloat16);
  EXPECT_NEAR(got.loss.item<double>(), truth.loss.item<double>(), 1e-2);
  const auto error = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a.to(torch::kFloat32) - b).norm() / b.norm()).item<double>();
  };
  for (const auto& [got_grad, plain_grad, true_grad] :
       {std::tuple{got.hidden_grad, plain.hidden_grad, truth.hidden_grad},
        std::tuple{got.weight_grad, plain.weight_grad, truth.weight_grad}}) {
    EXPECT_LT(error(got_grad, true_grad), 2e-2);
    EXPECT_LT(error(got_grad, true_grad), error(plain_grad, true_grad) + 8e-3);
  }
}

TEST(FusedLmHeadCrossEntropy, WithoutGradientsOnlyTheLossIsComputed) {
  torch::manual_seed(13);
  const auto hidden = torch::randn({9, 4}).requires_grad_(true);
  const auto weight = torch::randn({7, 4});
  const auto targets = torch::randint(7, {9}, torch::kInt64);
  const auto expected = torch::nn::functional::cross_entropy(torch::linear(hidden, weight), targets);
  torch::NoGradGuard no_grad;
  const auto loss = fused_lm_head_cross_entropy(hidden, weight, targets, 2);
  EXPECT_FALSE(loss.requires_grad());
  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-5);
}

TEST(FusedLmHeadCrossEntropy, AFrozenHeadGetsNoGradientButTheHiddenStatesDo) {
  torch::manual_seed(14);
  const auto hidden = torch::randn({6, 4}).requires_grad_(true);
  const auto weight = torch::randn({5, 4});  // frozen
  const auto targets = torch::randint(5, {6}, torch::kInt64);
  fused_lm_head_cross_entropy(hidden, weight, targets, 4).backward();
  const auto reference = hidden.detach().clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(torch::linear(reference, weight), targets).backward();
  EXPECT_TRUE(torch::allclose(hidden.grad(), reference.grad(), 1e-5, 1e-6));
  EXPECT_FALSE(weight.grad().defined());
}

}  // namespace svmoe
