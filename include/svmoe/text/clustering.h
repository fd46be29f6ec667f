// Equal-size spectral clustering (SPEC.md §2.2; the algorithm is written down in
// docs/prepare.md): spectral clustering of a k-nearest-neighbour affinity over distances,
// then a greedy pass that moves items from the largest to the smallest clusters until the
// sizes differ by at most a tolerance. Everything is deterministic for a given seed.
#pragma once

#include <cstdint>
#include <vector>

namespace svmoe {

// A symmetric [n * n] row-major matrix.
struct SquareMatrix {
  std::size_t n = 0;
  std::vector<double> values;
  double operator()(std::size_t i, std::size_t j) const { return values[i * n + j]; }
};

// scikit-learn's "precomputed_nearest_neighbors" affinity: connectivity C[i][j] = 1 when j is
// among the `neighbors` nearest items of i (i itself included, at distance 0), then 0.5 (C + C^T).
SquareMatrix knn_affinity(const SquareMatrix& distances, int neighbors);

// Spectral clustering of an affinity matrix into `clusters` groups: the normalised Laplacian's
// `clusters` smallest eigenvectors, scaled by 1/sqrt(degree) and sign-fixed as scikit-learn's
// spectral_embedding does, then k-means (k-means++ seeding, 10 restarts, the lowest inertia).
std::vector<int> spectral_clustering(const SquareMatrix& affinity, int clusters, std::uint64_t seed);

// Moves items until max size - min size <= tolerance (>= 1): each step takes, from a largest
// cluster to a smallest one, the item with the smallest mean distance to the receiving
// cluster, preferring receiving clusters that neighbour the item's own in the affinity graph.
std::vector<int> balance_cluster_sizes(std::vector<int> labels, int clusters, const SquareMatrix& distances,
                                       const SquareMatrix& affinity, int tolerance);

// Labels renumbered in order of each cluster's smallest item, so equal partitions get equal labels.
std::vector<int> canonical_labels(const std::vector<int>& labels);

struct EqualSizeClusteringOptions {
  int clusters = 2;
  int neighbors = 0;  // 0: round(sqrt(n)) + 1, at most n
  int tolerance = 1;
  std::uint64_t seed = 0;
};

std::vector<int> equal_size_spectral_clustering(const SquareMatrix& distances,
                                                const EqualSizeClusteringOptions& options);

}  // namespace svmoe
