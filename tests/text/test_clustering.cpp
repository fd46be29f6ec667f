#include "svmoe/text/clustering.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "test_support.h"

namespace svmoe {

namespace {

// Points in `groups` well-separated blobs on a line, `sizes[g]` points each; Euclidean distances.
SquareMatrix blob_distances(const std::vector<int>& sizes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<double> x;
  for (std::size_t g = 0; g < sizes.size(); ++g) {
    for (int i = 0; i < sizes[g]; ++i) x.push_back(10.0 * static_cast<double>(g) + noise(rng));
  }
  SquareMatrix d{x.size(), std::vector<double>(x.size() * x.size())};
  for (std::size_t i = 0; i < x.size(); ++i) {
    for (std::size_t j = 0; j < x.size(); ++j) d.values[i * x.size() + j] = std::abs(x[i] - x[j]);
  }
  return d;
}

std::vector<int> sizes_of(const std::vector<int>& labels, int clusters) {
  std::vector<int> sizes(static_cast<std::size_t>(clusters), 0);
  for (const int l : labels) ++sizes[l];
  return sizes;
}

}  // namespace

TEST(Clustering, KnnAffinityIsSymmetricAndIncludesSelf) {
  const auto d = blob_distances({3, 3}, 1);
  const auto a = knn_affinity(d, 2);
  for (std::size_t i = 0; i < d.n; ++i) {
    EXPECT_GT(a(i, i), 0.0);
    for (std::size_t j = 0; j < d.n; ++j) EXPECT_EQ(a(i, j), a(j, i));
  }
}

TEST(Clustering, SeparatedBlobsAreFound) {
  const auto d = blob_distances({4, 4, 4}, 2);
  const auto labels = canonical_labels(spectral_clustering(knn_affinity(d, 4), 3, 7));
  EXPECT_EQ(labels, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
}

TEST(Clustering, BalancingEqualisesSizesDeterministically) {
  // Blobs of 9, 2 and 1 items into 3 clusters: 12 items -> sizes 4, 4, 4.
  const auto d = blob_distances({9, 2, 1}, 3);
  EqualSizeClusteringOptions options;
  options.clusters = 3;
  options.seed = 5;
  const auto labels = equal_size_spectral_clustering(d, options);
  auto sizes = sizes_of(labels, 3);
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int>{4, 4, 4}));
  EXPECT_EQ(labels, equal_size_spectral_clustering(d, options));  // same seed, same answer
  // The small blobs stay together.
  EXPECT_EQ(labels[9], labels[10]);
}

TEST(Clustering, ToleranceAllowsUnevenSizes) {
  const auto d = blob_distances({7, 2, 1}, 4);
  EqualSizeClusteringOptions options;
  options.clusters = 3;
  options.tolerance = 3;
  const auto sizes = sizes_of(equal_size_spectral_clustering(d, options), 3);
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()), 3);
}

TEST(Clustering, SizesDifferByAtMostOneWhenNotDivisible) {
  const auto d = blob_distances({6, 3, 2}, 6);
  EqualSizeClusteringOptions options;
  options.clusters = 3;
  const auto sizes = sizes_of(equal_size_spectral_clustering(d, options), 3);
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()), 1);
}

// Before balancing, svmoe's spectral clustering gives scikit-learn's partition on the same
// affinity. A Gaussian affinity keeps the graph connected: on a disconnected graph (a kNN graph
// of far-apart blobs) the Laplacian's null space has no preferred basis and scikit-learn's own
// partition becomes arbitrary.
TEST(ClusteringReference, SpectralClusteringMatchesScikitLearn) {
  for (const std::uint64_t seed : {11, 12, 13}) {
    const auto d = blob_distances({5, 7, 4, 6}, seed);
    SquareMatrix affinity{d.n, std::vector<double>(d.n * d.n)};
    for (std::size_t i = 0; i < d.values.size(); ++i) affinity.values[i] = std::exp(-d.values[i] * d.values[i] / 8.0);
    nlohmann::json matrix = nlohmann::json::array();
    for (std::size_t i = 0; i < d.n; ++i) {
      matrix.push_back(std::vector<double>(affinity.values.begin() + static_cast<std::ptrdiff_t>(i * d.n),
                                           affinity.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * d.n)));
    }
    const auto answer = test::sklearn_reference("spectral", {{"affinity", matrix}, {"clusters", 4}, {"seed", 0}});
    const auto expected = canonical_labels(answer["labels"].get<std::vector<int>>());
    EXPECT_EQ(canonical_labels(spectral_clustering(affinity, 4, seed)), expected) << seed;
    // The cited equal-size clustering's label assignment, "discretize".
    const auto discretized =
        test::sklearn_reference("spectral_discretize", {{"affinity", matrix}, {"clusters", 4}, {"seed", 0}});
    EXPECT_EQ(canonical_labels(spectral_clustering(affinity, 4, seed, LabelAssignment::kDiscretize)),
              canonical_labels(discretized["labels"].get<std::vector<int>>()))
        << seed;
  }
}

// The cited balancing step by step on 12 points of a line (distance |i - j|), labelled 9/2/1,
// equity 0.5: ideal sizes 4, bounds [2, 6]. Cluster 0 gives its points nearest to cluster 1
// (its only neighbour) until cluster 1 reaches 6; then cluster 2 (below 2) takes the nearest
// point of a neighbouring cluster, and the pass ends once it has enough.
TEST(Clustering, EquityBalancingFollowsTheCitedRules) {
  SquareMatrix d{12, std::vector<double>(144)};
  for (std::size_t i = 0; i < 12; ++i) {
    for (std::size_t j = 0; j < 12; ++j)
      d.values[i * 12 + j] = std::abs(static_cast<double>(i) - static_cast<double>(j));
  }
  const std::vector<int> initial = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2};
  EXPECT_EQ(equalize_cluster_sizes(initial, 3, d, 4, 0.5), (std::vector<int>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2}));
  // Sizes already within the bounds are left alone.
  const std::vector<int> within = {0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
  EXPECT_EQ(equalize_cluster_sizes(within, 3, d, 4, 0.5), within);
}

// Unlike strict balancing, the cited mode keeps natural clusters of uneven size (the paper's
// Table 4 has 10/5/10/10/12): far-apart blobs of 6, 3 and 3 are no neighbours, so nothing moves.
TEST(Clustering, EquityModeKeepsUnevenNaturalClusters) {
  const auto d = blob_distances({6, 3, 3}, 8);
  EqualSizeClusteringOptions options;
  options.clusters = 3;
  options.sizes = ClusterSizes::kEquity;
  options.seed = 3;
  const auto labels = equal_size_spectral_clustering(d, options);
  EXPECT_EQ(labels, (std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(labels, equal_size_spectral_clustering(d, options));  // same seed, same answer
  options.sizes = ClusterSizes::kStrict;
  auto strict = sizes_of(equal_size_spectral_clustering(d, options), 3);
  std::sort(strict.begin(), strict.end());
  EXPECT_EQ(strict, (std::vector<int>{4, 4, 4}));
}

}  // namespace svmoe
