#include "svmoe/train/routing_statistics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace svmoe {

TEST(RoutingStatistics, FractionsEntropyAndLoadRatioByTheirDefinitions) {
  RoutingStatistics stats(/*layers=*/1, /*experts=*/3, /*top_k=*/1);
  // Tokens 0-2 go to expert 0, token 3 to expert 1; expert 2 gets nothing.
  const auto logits = torch::tensor({{5.0, 0.0, 0.0}, {4.0, 1.0, 0.0}, {3.0, 0.0, 1.0}, {0.0, 4.0, 0.0}});
  stats.add({logits}, {});
  EXPECT_EQ(stats.tokens(), 4.0);
  auto json = stats.to_json();
  EXPECT_DOUBLE_EQ(json["expert_fraction"][0][0].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(json["expert_fraction"][0][1].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(json["expert_fraction"][0][2].get<double>(), 0.0);
  EXPECT_TRUE(json["max_min_load_ratio"][0].is_null());  // an expert got nothing
  double entropy = 0;
  for (int t = 0; t < 4; ++t) {
    const auto p = torch::softmax(logits[t], 0);
    entropy -= (p * p.log()).sum().item<double>();
  }
  EXPECT_NEAR(json["router_entropy"][0].get<double>(), entropy / 4, 1e-6);

  // A selection bias moves choices (aux_free) and the ratio becomes finite.
  stats.reset();
  stats.add({logits}, {torch::tensor({0.0, 0.0, 0.8})});
  json = stats.to_json();
  // Token 2: p = (0.84, 0.04, 0.11), and 0.11 + 0.8 > 0.84; the others keep their expert.
  EXPECT_DOUBLE_EQ(json["expert_fraction"][0][2].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(json["max_min_load_ratio"][0].get<double>(), 2.0);
}

}  // namespace svmoe
