#include "svmoe/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_support.h"

namespace svmoe {

// Against LibTorch's own AdamW: the same parameters, gradients and hyper-parameters.
TEST(AdamWReference, MatchesTorchOptimAdamW) {
  for (const double decay : {0.0, 0.1}) {
    torch::manual_seed(0);
    auto ours = torch::randn({4, 3}).requires_grad_(true);
    auto theirs = ours.detach().clone().requires_grad_(true);
    AdamW optimizer({{"w", ours}}, {0.9, 0.95, 1e-8, decay});
    torch::optim::AdamW reference({theirs},
                                  torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(decay));
    for (int step = 0; step < 6; ++step) {
      const auto grad = torch::randn({4, 3});
      ours.mutable_grad() = grad.clone();
      theirs.mutable_grad() = grad.clone();
      optimizer.step(1e-2);
      reference.step();
    }
    EXPECT_TRUE(torch::allclose(ours, theirs, 1e-6, 1e-6)) << decay;
  }
}

TEST(AdamW, NoWeightDecayOnVectors) {
  auto bias = torch::ones({5}).requires_grad_(true);
  AdamW optimizer({{"norm.weight", bias}}, {0.9, 0.95, 1e-8, 0.5});
  bias.mutable_grad() = torch::zeros({5});
  optimizer.step(0.1);
  EXPECT_TRUE(torch::equal(bias, torch::ones({5})));  // zero gradient, no decay: unchanged
}

TEST(AdamW, StateRoundTripsExactly) {
  test::ScratchDir dir;
  torch::manual_seed(1);
  auto w = torch::randn({3, 3}).requires_grad_(true);
  AdamW optimizer({{"w", w}}, {});
  w.mutable_grad() = torch::randn({3, 3});
  optimizer.step(1e-3);
  write_safetensors(dir / "opt.safetensors", optimizer.state());
  auto w2 = w.detach().clone().requires_grad_(true);
  AdamW restored({{"w", w2}}, {});
  restored.load_state(SafetensorsFile::open(dir / "opt.safetensors"));
  EXPECT_EQ(restored.steps(), 1);
  const auto g = torch::randn({3, 3});
  w.mutable_grad() = g.clone();
  w2.mutable_grad() = g.clone();
  optimizer.step(1e-3);
  restored.step(1e-3);
  EXPECT_TRUE(torch::equal(w, w2));
}

TEST(Schedule, WarmupThenDecayToTheFloor) {
  EXPECT_DOUBLE_EQ(learning_rate_at(0, 100, 10, 1.0, 0.1, "cosine"), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(9, 100, 10, 1.0, 0.1, "cosine"), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(10, 100, 10, 1.0, 0.1, "cosine"), 1.0);
  EXPECT_NEAR(learning_rate_at(55, 100, 10, 1.0, 0.1, "cosine"), 0.55, 1e-12);  // half way: the mean
  EXPECT_NEAR(learning_rate_at(100, 100, 10, 1.0, 0.1, "cosine"), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate_at(55, 100, 10, 1.0, 0.0, "linear"), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate_at(70, 100, 10, 2.0, 0.1, "constant"), 2.0);
}

TEST(Clipping, ScalesToTheMaximumNorm) {
  auto a = torch::zeros({2}).requires_grad_(true);
  auto b = torch::zeros({1}).requires_grad_(true);
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(clip_gradients({{"a", a}, {"b", b}}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(std::sqrt(a.grad().pow(2).sum().item<double>() + b.grad().pow(2).sum().item<double>()), 1.0, 1e-5);
}

}  // namespace svmoe
