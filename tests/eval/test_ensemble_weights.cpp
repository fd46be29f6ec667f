#include "svmoe/eval/ensemble_weights.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <numeric>

#include "svmoe/config/expert_coverage.h"

namespace svmoe {

namespace {

// N unit rows over a vocabulary of V.
torch::Tensor unit_rows(std::int64_t n, std::int64_t v, std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor rows = torch::rand({n, v}, torch::kFloat64);
  return rows / rows.norm(2, {1}, true);
}

double sum(const std::vector<double>& w) { return std::accumulate(w.begin(), w.end(), 0.0); }

}  // namespace

TEST(EnsembleWeights, SumToOneForEveryWeightingAndCoverage) {
  const torch::Tensor rows = unit_rows(4, 50, 1);
  for (int trial = 0; trial < 20; ++trial) {
    const torch::Tensor counts = torch::randint(0, 5, {50}, torch::kFloat64);
    for (const auto coverage : {ExpertCoverage::kSubdomains, ExpertCoverage::kPairs}) {
      for (const auto weighting : {EnsembleWeighting::kTfidf, EnsembleWeighting::kDistance}) {
        const auto w = ensemble_weights(counts, rows, expert_subdomains(coverage, 4), weighting);
        EXPECT_EQ(w.size(), coverage == ExpertCoverage::kPairs ? 6u : 4u);
        EXPECT_NEAR(sum(w), 1.0, 1e-12);
        for (const double x : w) EXPECT_GE(x, 0.0);
      }
    }
  }
  // No tokens: uniform (tfidf), equal distances so uniform too (distance).
  for (const auto weighting : {EnsembleWeighting::kTfidf, EnsembleWeighting::kDistance}) {
    const auto w =
        ensemble_weights(torch::zeros({50}), rows, expert_subdomains(ExpertCoverage::kSubdomains, 4), weighting);
    for (const double x : w) EXPECT_NEAR(x, 0.25, 1e-12);
  }
}

// Monju's weighting, computed by hand: three clusters A, B, C and an expert per pair,
// alpha_AB = d_C / (d_A + d_B + d_C), with d the distance to each cluster's centre.
TEST(EnsembleWeights, DistanceIsMonjusFormulaForPairsOfThreeClusters) {
  const torch::Tensor rows = unit_rows(3, 20, 2);
  const torch::Tensor counts = torch::randint(0, 4, {20}, torch::kFloat64);
  const torch::Tensor x = counts / counts.norm();
  std::vector<double> d;
  for (int k = 0; k < 3; ++k) d.push_back((x - rows[k]).norm().item<double>());
  const double total = d[0] + d[1] + d[2];
  const auto w =
      ensemble_weights(counts, rows, expert_subdomains(ExpertCoverage::kPairs, 3), EnsembleWeighting::kDistance);
  EXPECT_NEAR(w[0], d[2] / total, 1e-12);  // {A, B}
  EXPECT_NEAR(w[1], d[1] / total, 1e-12);  // {A, C}
  EXPECT_NEAR(w[2], d[0] / total, 1e-12);  // {B, C}
}

TEST(EnsembleWeights, TfidfIsTheNormalisedCosineAndBothFavourTheNearestSubdomain) {
  const torch::Tensor rows = unit_rows(3, 20, 3);
  const torch::Tensor counts = rows[1] * 7 + 0.01;  // almost subdomain 1's direction
  const auto cosine = rows.matmul(counts) / counts.norm();
  const auto tfidf =
      ensemble_weights(counts, rows, expert_subdomains(ExpertCoverage::kSubdomains, 3), EnsembleWeighting::kTfidf);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(tfidf[k], cosine[k].item<double>() / cosine.sum().item<double>(), 1e-12);
  }
  const auto distance =
      ensemble_weights(counts, rows, expert_subdomains(ExpertCoverage::kSubdomains, 3), EnsembleWeighting::kDistance);
  EXPECT_GT(distance[1], distance[0]);
  EXPECT_GT(distance[1], distance[2]);
  EXPECT_GT(tfidf[1], tfidf[0]);
}

}  // namespace svmoe
