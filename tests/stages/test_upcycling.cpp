#include "svmoe/stages/upcycling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace svmoe {

using parameter_names::FfnProjection;

namespace {

// The indices along `dim` where `a` and `b` differ anywhere.
torch::Tensor changed_indices(const torch::Tensor& a, const torch::Tensor& b, std::int64_t dim) {
  const std::int64_t other = 1 - dim;
  return (a != b).any(other).nonzero().flatten();
}

}  // namespace

TEST(Upcycling, TheDroppedNeuronsAreAFloorRFractionFixedBySeedLayerAndExpert) {
  const torch::Tensor s = dropped_neurons(160, 0.5, 1, 2, 7);
  EXPECT_EQ(s.numel(), 80);
  EXPECT_EQ(std::get<0>(torch::_unique(s)).numel(), 80);  // distinct
  EXPECT_GE(s.min().item<std::int64_t>(), 0);
  EXPECT_LT(s.max().item<std::int64_t>(), 160);
  EXPECT_EQ(dropped_neurons(160, 0.33, 0, 0, 7).numel(), 52);  // floor(52.8)
  EXPECT_TRUE(torch::equal(s, dropped_neurons(160, 0.5, 1, 2, 7)));
  EXPECT_FALSE(torch::equal(s, dropped_neurons(160, 0.5, 1, 3, 7)));  // another expert
  EXPECT_FALSE(torch::equal(s, dropped_neurons(160, 0.5, 0, 2, 7)));  // another layer
  EXPECT_FALSE(torch::equal(s, dropped_neurons(160, 0.5, 1, 2, 8)));  // another seed
  EXPECT_EQ(dropped_neurons(160, 0.0, 1, 2, 7).numel(), 0);
  EXPECT_EQ(dropped_neurons(160, 1.0, 1, 2, 7).numel(), 160);
}

// Nakamura et al. (ICLR 2025), Drop-Upcycling: the dropped neurons' weights are re-drawn from a
// normal with the mean and std of the weights they replace; every other weight is kept.
TEST(Upcycling, DropRedrawsTheNeuronsInSWithTheReplacedWeightsMeanAndStd) {
  torch::manual_seed(0);
  const std::int64_t d_ff = 512, hidden = 64;
  const ExpertFfnSlot gate{1, 3, FfnProjection::kGate, 42};
  const torch::Tensor w1 = torch::randn({d_ff, hidden}) * 0.05 + 0.3;  // mean 0.3, std 0.05
  const torch::Tensor w2 = torch::randn({hidden, d_ff}) * 0.2 - 0.1;
  const torch::Tensor new_w1 = drop_upcycled(w1, gate, 0.5);
  const torch::Tensor new_w2 = drop_upcycled(w2, {1, 3, FfnProjection::kDown, 42}, 0.5);
  const torch::Tensor s = dropped_neurons(d_ff, 0.5, 1, 3, 42);
  // Exactly the neurons in S changed, the same set for the rows of w1 and the columns of w2.
  EXPECT_TRUE(torch::equal(changed_indices(w1, new_w1, 0), s));
  EXPECT_TRUE(torch::equal(changed_indices(w2, new_w2, 1), s));
  for (const auto& [old_weight, new_weight, dim] :
       {std::make_tuple(w1, new_w1, std::int64_t{0}), std::make_tuple(w2, new_w2, std::int64_t{1})}) {
    const torch::Tensor replaced = old_weight.index_select(dim, s).to(torch::kFloat64);
    const torch::Tensor drawn = new_weight.index_select(dim, s).to(torch::kFloat64);
    const double n = static_cast<double>(drawn.numel());  // 16384 draws
    const double sigma = replaced.std().item<double>();
    // Five standard errors of the sample mean and of the sample std of n normal draws.
    EXPECT_NEAR(drawn.mean().item<double>(), replaced.mean().item<double>(), 5 * sigma / std::sqrt(n));
    EXPECT_NEAR(drawn.std().item<double>(), sigma, 5 * sigma / std::sqrt(2 * n));
    EXPECT_GT((drawn - replaced).abs().mean().item<double>(), 0.5 * sigma);  // re-drawn, not copied
  }
}

TEST(Upcycling, ZeroRatioIsTheWeightItselfAndBf16StaysBf16) {
  const torch::Tensor w = torch::randn({160, 64}).to(torch::kBFloat16);
  EXPECT_TRUE(drop_upcycled(w, {0, 0, FfnProjection::kUp, 1}, 0.0).is_same(w));
  EXPECT_TRUE(noise_upcycled(w, {0, 0, FfnProjection::kUp, 1}, 0.0, 0.02).is_same(w));
  const torch::Tensor dropped = drop_upcycled(w, {0, 0, FfnProjection::kUp, 1}, 0.25);
  EXPECT_EQ(dropped.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(changed_indices(w, dropped, 0).numel(), 40);
}

// The random-noise upcycling of Drop-Upcycling's conversions/noise_upcycling.py: normal(0, std)
// added to the neurons in S.
TEST(Upcycling, NoiseAddsNormalNoiseToTheNeuronsInSOnly) {
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({512, 64});
  const ExpertFfnSlot slot{0, 1, FfnProjection::kGate, 5};
  const torch::Tensor noisy = noise_upcycled(w, slot, 0.5, 0.02);
  const torch::Tensor s = dropped_neurons(512, 0.5, 0, 1, 5);
  EXPECT_TRUE(torch::equal(changed_indices(w, noisy, 0), s));
  const torch::Tensor noise = (noisy - w).index_select(0, s).to(torch::kFloat64);
  const double n = static_cast<double>(noise.numel());
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 5 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(noise.std().item<double>(), 0.02, 5 * 0.02 / std::sqrt(2 * n));
}

TEST(Upcycling, RoutersHaveTheAskedStdAndTheUniformOneIsCentred) {
  const torch::Tensor normal = initial_router(RouterInit::kNormal, 0, 8, 2048, 0.02, 3, torch::kFloat32);
  const torch::Tensor uniform = initial_router(RouterInit::kUniform, 0, 8, 2048, 0.02, 3, torch::kFloat32);
  const double n = 8 * 2048;
  EXPECT_NEAR(normal.std().item<double>(), 0.02, 5 * 0.02 / std::sqrt(2 * n));
  EXPECT_NEAR(uniform.mean().item<double>(), 0.0, 1e-7);
  EXPECT_NEAR(uniform.std().item<double>(), 0.02, 0.0005);
  // Uniform on [-sqrt(3) std, sqrt(3) std] (up to the centring), which a normal is not.
  EXPECT_LT(uniform.abs().max().item<double>(), std::sqrt(3.0) * 0.02 + 1e-3);
  EXPECT_GT(normal.abs().max().item<double>(), std::sqrt(3.0) * 0.02 + 1e-3);
  EXPECT_TRUE(torch::equal(normal, initial_router(RouterInit::kNormal, 0, 8, 2048, 0.02, 3, torch::kFloat32)));
  EXPECT_FALSE(torch::equal(normal, initial_router(RouterInit::kNormal, 1, 8, 2048, 0.02, 3, torch::kFloat32)));
}

}  // namespace svmoe
