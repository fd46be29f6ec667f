#include "svmoe/train/load_balancing.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/safetensors.h"
#include "test_support.h"

namespace svmoe {

// On transformers' own router logits, the pooled loss equals transformers' aux_loss
// (load_balancing_loss_func over all layers, before the coefficient).
TEST(LoadBalancingReference, PooledLossEqualsTransformersAuxLoss) {
  for (const auto& [name, top_k] :
       std::vector<std::pair<std::string, int>>{{"mixtral_8e_top2", 2}, {"mixtral_4e_top1_gqa", 1}}) {
    const SafetensorsFile expected = SafetensorsFile::open(test::model_fixture(name) / "expected.safetensors");
    const std::vector<torch::Tensor> logits = {expected.tensor("router_logits.0"), expected.tensor("router_logits.1")};
    const double loss = switch_load_balancing_loss(logits, top_k, LoadBalancingPooling::kPooled).item<double>();
    EXPECT_NEAR(loss, expected.tensor("aux_loss").item<double>(), 1e-6) << name;
  }
}

TEST(LoadBalancing, PerLayerIsTheMeanOfLayers) {
  torch::manual_seed(1);
  const auto a = torch::randn({30, 4});
  const auto b = torch::randn({30, 4}) * 3;
  const double per_layer = switch_load_balancing_loss({a, b}, 2, LoadBalancingPooling::kPerLayer).item<double>();
  const double mean =
      (switch_load_balancing_loss({a}, 2).item<double>() + switch_load_balancing_loss({b}, 2).item<double>()) / 2;
  EXPECT_NEAR(per_layer, mean, 1e-6);
}

TEST(LoadBalancing, BalancedRouterScoresTopKAndCollapsedScoresMore) {
  // Tokens spread evenly over 4 experts with uniform probabilities: f = 1/4 per slot, P = 1/4.
  const auto uniform = torch::zeros({8, 4});
  EXPECT_NEAR(switch_load_balancing_loss({uniform}, 1).item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(switch_load_balancing_loss({uniform}, 2).item<double>(), 2.0, 1e-6);
  auto collapsed = torch::zeros({8, 4});
  collapsed.select(1, 0).fill_(10.0);
  EXPECT_GT(switch_load_balancing_loss({collapsed}, 1).item<double>(), 3.5);
}

TEST(LoadBalancing, HasGradientsForTheRouter) {
  auto logits = torch::randn({16, 4}, torch::requires_grad());
  switch_load_balancing_loss({logits}, 2).backward();
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace svmoe
