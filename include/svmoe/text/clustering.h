// Equal-size spectral clustering (SPEC.md §2.2; the algorithms are written down in
// docs/prepare.md): spectral clustering of a k-nearest-neighbour affinity over distances, then
// one of two balancing passes:
//   strict  k-means labels, then items move from the largest to the smallest clusters until
//           the sizes differ by at most a tolerance;
//   equity  the cited implementation's behaviour (anamabo/Equal-Size-Spectral-Clustering, which
//           the paper uses): "discretize" labels, then clusters larger than
//           max_size x (2 - equity) give points to neighbouring clusters and clusters smaller
//           than min_size x equity take some, in one pass each.
// Everything is deterministic for a given seed.
#pragma once

#include <cstdint>
#include <vector>

#include "svmoe/config/enums.h"

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
// spectral_embedding does, then labels by k-means (k-means++ seeding, 10 restarts, the lowest
// inertia) or by scikit-learn's "discretize" (Yu and Shi's rotation search; its first row drawn
// with `seed`).
enum class LabelAssignment { kKMeans, kDiscretize };
std::vector<int> spectral_clustering(const SquareMatrix& affinity, int clusters, std::uint64_t seed,
                                     LabelAssignment assignment = LabelAssignment::kKMeans);

// Moves items until max size - min size <= tolerance (>= 1): each step takes, from a largest
// cluster to a smallest one, the item with the smallest mean distance to the receiving
// cluster, preferring receiving clusters that neighbour the item's own in the affinity graph.
std::vector<int> balance_cluster_sizes(std::vector<int> labels, int clusters, const SquareMatrix& distances,
                                       const SquareMatrix& affinity, int tolerance);

// Labels renumbered in order of each cluster's smallest item, so equal partitions get equal labels.
std::vector<int> canonical_labels(const std::vector<int>& labels);

// The cited implementation's balancing (cluster_equalization): with ideal sizes floor(n/k) or
// that + 1 (the first n mod k labels get the larger), clusters above max x (2 - equity) give
// their points nearest (by mean distance) to another cluster, to neighbouring clusters under
// that bound, down to their ideal size; then clusters below min x equity take the nearest
// points of neighbouring clusters that stay at or above that bound. Neighbouring clusters:
// those among the first min(30, neighbors) - 1 nearest items of a member, in `labels`.
std::vector<int> equalize_cluster_sizes(std::vector<int> labels, int clusters, const SquareMatrix& distances,
                                        int neighbors, double equity_fraction);

struct EqualSizeClusteringOptions {
  int clusters = 2;
  int neighbors = 0;  // 0: round(sqrt(n)) + 1, at most n
  ClusterSizes sizes = ClusterSizes::kStrict;
  int tolerance = 1;             // strict: largest - smallest <= tolerance
  double equity_fraction = 0.3;  // equity: the sizes' bounds (the cited default)
  std::uint64_t seed = 0;
};

std::vector<int> equal_size_spectral_clustering(const SquareMatrix& distances,
                                                const EqualSizeClusteringOptions& options);

}  // namespace svmoe
