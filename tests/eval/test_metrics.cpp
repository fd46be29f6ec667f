// The metrics against direct computations written apart from the implementation: ranks by
// sorting, CMR_k and S_RL by loops over (position, layer, expert).
#include "svmoe/eval/metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace svmoe {

namespace {

// Average ranks (1 = largest) of one row by sorting, ties averaged.
std::vector<double> ranks_by_sorting(const std::vector<double>& x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] > x[b]; });
  std::vector<double> rank(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double average = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2.0;
    for (std::size_t t = i; t <= j; ++t) rank[order[t]] = average;
    i = j + 1;
  }
  return rank;
}

std::vector<double> row(const torch::Tensor& t, std::int64_t i) {
  std::vector<double> values;
  for (std::int64_t n = 0; n < t.size(1); ++n) values.push_back(t[i][n].item<double>());
  return values;
}

}  // namespace

TEST(Metrics, MeanStdIsThePopulationMomentsAndMerges) {
  MeanStd a, b, all;
  const std::vector<double> values = {1, 2, 4, 8, 16, 3};
  for (std::size_t i = 0; i < values.size(); ++i) {
    (i < 2 ? a : b).add(values[i]);
    all.add(values[i]);
  }
  const double mean = 34.0 / 6;
  double var = 0;
  for (const double v : values) var += (v - mean) * (v - mean);
  EXPECT_NEAR(all.mean(), mean, 1e-12);
  EXPECT_NEAR(all.std(), std::sqrt(var / 6), 1e-12);
  a.add(b);
  EXPECT_EQ(a.count(), 6u);
  EXPECT_NEAR(a.mean(), mean, 1e-12);
  EXPECT_NEAR(a.std(), all.std(), 1e-12);
  EXPECT_TRUE(MeanStd().to_json()["mean"].is_null());
}

TEST(Metrics, AverageRanksEqualRanksBySorting) {
  torch::manual_seed(3);
  // Rounded values, so that ties occur.
  const auto scores = (torch::randn({50, 8}) * 2).round() / 2;
  const auto ranks = average_ranks(scores);
  for (std::int64_t i = 0; i < 50; ++i) {
    const auto expected = ranks_by_sorting(row(scores, i));
    for (std::int64_t n = 0; n < 8; ++n) EXPECT_DOUBLE_EQ(ranks[i][n].item<double>(), expected[n]) << i << "," << n;
  }
  EXPECT_TRUE(torch::equal(average_ranks(torch::tensor({{0.5, 0.0, 0.0, 0.5}})),
                           torch::tensor({{1.5, 3.5, 3.5, 1.5}}, torch::kFloat64)));
}

TEST(Metrics, ConditionalMeanRankAndEntropyEqualLoopsOverTheDefinition) {
  torch::manual_seed(4);
  const std::int64_t positions = 40, experts = 6, layers = 3;
  // TF-IDF-like targets: sums of 1, many exact zeros (ties), some positions without a target.
  auto targets = torch::rand({positions, experts});
  targets = targets * (torch::rand({positions, experts}) > 0.5).to(torch::kFloat32);
  targets.index_put_({torch::indexing::Slice(), 0}, targets.index({torch::indexing::Slice(), 0}) + 0.01);
  targets = targets / targets.sum(-1, true);
  const auto has_target = torch::rand({positions}) > 0.2;
  ConditionalMeanRank cmr;
  MeanStd entropy;
  std::vector<double> by_k[3];
  std::vector<double> entropies;
  for (std::int64_t l = 0; l < layers; ++l) {
    const auto logits = torch::randn({positions, experts}) * 3;
    cmr.add(logits, targets, has_target);
    add_router_entropy(logits, entropy);
    for (std::int64_t p = 0; p < positions; ++p) {
      const auto x = row(logits, p);
      double z = 0, h = 0;
      for (const double v : x) z += std::exp(v);
      for (const double v : x) h -= std::exp(v) / z * (v - std::log(z));
      entropies.push_back(h);
      if (!has_target[p].item<bool>()) continue;
      const auto router_rank = ranks_by_sorting(x);
      const auto target_rank = ranks_by_sorting(row(targets, p));
      for (std::int64_t n = 0; n < experts; ++n) {
        if (router_rank[n] == 1.0) by_k[1].push_back(target_rank[n]);
        if (router_rank[n] == 2.0) by_k[2].push_back(target_rank[n]);
      }
    }
  }
  for (int k = 1; k <= 2; ++k) {
    const double mean = std::accumulate(by_k[k].begin(), by_k[k].end(), 0.0) / static_cast<double>(by_k[k].size());
    double var = 0;
    for (const double v : by_k[k]) var += (v - mean) * (v - mean);
    EXPECT_EQ(cmr.cmr(k).count(), by_k[k].size()) << k;
    EXPECT_NEAR(cmr.cmr(k).mean(), mean, 1e-12) << k;
    EXPECT_NEAR(cmr.cmr(k).std(), std::sqrt(var / static_cast<double>(by_k[k].size())), 1e-12) << k;
  }
  const double mean_h =
      std::accumulate(entropies.begin(), entropies.end(), 0.0) / static_cast<double>(entropies.size());
  EXPECT_EQ(entropy.count(), static_cast<std::uint64_t>(positions * layers));
  EXPECT_NEAR(entropy.mean(), mean_h, 1e-6);
}

TEST(Metrics, RoutingThatFollowsTfidfScoresCmrOne) {
  const auto targets = torch::tensor({{0.7, 0.2, 0.1}, {0.1, 0.3, 0.6}});
  ConditionalMeanRank cmr;
  cmr.add(targets.log(), targets, torch::ones({2}, torch::kBool));  // same order as the targets
  EXPECT_DOUBLE_EQ(cmr.cmr(1).mean(), 1.0);
  EXPECT_DOUBLE_EQ(cmr.cmr(2).mean(), 2.0);
  EXPECT_DOUBLE_EQ(cmr.cmr(1).std(), 0.0);
}

}  // namespace svmoe
