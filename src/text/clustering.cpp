#include "svmoe/text/clustering.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>

namespace svmoe {
namespace {

// k-means on the rows of `points`, seeded with k-means++; the best of `restarts` runs.
std::vector<int> kmeans(const Eigen::MatrixXd& points, int k, std::uint64_t seed, int restarts) {
  const auto n = points.rows();
  std::mt19937_64 rng(seed);
  std::vector<int> best_labels(static_cast<std::size_t>(n), 0);
  double best_inertia = std::numeric_limits<double>::infinity();
  for (int restart = 0; restart < restarts; ++restart) {
    Eigen::MatrixXd centres(k, points.cols());
    std::uniform_int_distribution<Eigen::Index> first(0, n - 1);
    centres.row(0) = points.row(first(rng));
    Eigen::VectorXd nearest = (points.rowwise() - centres.row(0)).rowwise().squaredNorm();
    for (int c = 1; c < k; ++c) {
      // Next centre drawn with probability proportional to the squared distance to the nearest one.
      const double total = nearest.sum();
      Eigen::Index chosen = 0;
      if (total > 0) {
        double target = std::uniform_real_distribution<double>(0.0, total)(rng);
        for (chosen = 0; chosen < n - 1; ++chosen) {
          target -= nearest(chosen);
          if (target <= 0) break;
        }
      } else {
        chosen = first(rng);
      }
      centres.row(c) = points.row(chosen);
      nearest = nearest.cwiseMin((points.rowwise() - centres.row(c)).rowwise().squaredNorm());
    }
    std::vector<int> labels(static_cast<std::size_t>(n), -1);
    double inertia = 0.0;
    for (int iteration = 0; iteration < 300; ++iteration) {
      bool changed = false;
      inertia = 0.0;
      for (Eigen::Index i = 0; i < n; ++i) {
        Eigen::Index label = 0;
        const double d = (centres.rowwise() - points.row(i)).rowwise().squaredNorm().minCoeff(&label);
        inertia += d;
        if (labels[i] != static_cast<int>(label)) {
          labels[i] = static_cast<int>(label);
          changed = true;
        }
      }
      if (!changed) break;
      for (int c = 0; c < k; ++c) {
        Eigen::RowVectorXd sum = Eigen::RowVectorXd::Zero(points.cols());
        int members = 0;
        for (Eigen::Index i = 0; i < n; ++i) {
          if (labels[i] == c) {
            sum += points.row(i);
            ++members;
          }
        }
        if (members > 0) centres.row(c) = sum / members;
      }
    }
    if (inertia < best_inertia) {
      best_inertia = inertia;
      best_labels = labels;
    }
  }
  return best_labels;
}

double mean_distance(std::size_t item, int cluster, const std::vector<int>& labels, const SquareMatrix& distances) {
  double sum = 0.0;
  int count = 0;
  for (std::size_t j = 0; j < labels.size(); ++j) {
    if (labels[j] == cluster) {
      sum += distances(item, j);
      ++count;
    }
  }
  return count ? sum / count : 0.0;
}

}  // namespace

SquareMatrix knn_affinity(const SquareMatrix& distances, int neighbors) {
  const std::size_t n = distances.n;
  const auto k = static_cast<std::size_t>(std::clamp<int>(neighbors, 1, static_cast<int>(n)));
  std::vector<double> connectivity(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    // The item itself first (distance 0), then by distance, ties by index.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const double da = a == i ? -1.0 : distances(i, a);
      const double db = b == i ? -1.0 : distances(i, b);
      return da < db;
    });
    for (std::size_t r = 0; r < k; ++r) connectivity[i * n + order[r]] = 1.0;
  }
  SquareMatrix affinity{n, std::vector<double>(n * n)};
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j)
      affinity.values[i * n + j] = 0.5 * (connectivity[i * n + j] + connectivity[j * n + i]);
  }
  return affinity;
}

std::vector<int> spectral_clustering(const SquareMatrix& affinity, int clusters, std::uint64_t seed) {
  const auto n = static_cast<Eigen::Index>(affinity.n);
  if (clusters < 1 || clusters > n) throw std::invalid_argument("spectral_clustering: bad number of clusters");
  if (clusters == 1) return std::vector<int>(static_cast<std::size_t>(n), 0);
  // Self-loops are ignored, as scipy's laplacian does.
  Eigen::MatrixXd a = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      affinity.values.data(), n, n);
  a.diagonal().setZero();
  Eigen::VectorXd degree = a.rowwise().sum();
  Eigen::VectorXd sqrt_degree = degree.cwiseSqrt();
  for (Eigen::Index i = 0; i < n; ++i) {
    if (sqrt_degree(i) == 0) sqrt_degree(i) = 1.0;  // an isolated item
  }
  const Eigen::VectorXd inverse = sqrt_degree.cwiseInverse();
  const Eigen::MatrixXd laplacian =
      Eigen::MatrixXd::Identity(n, n) - inverse.asDiagonal() * a * inverse.asDiagonal();  // I - D^-1/2 A D^-1/2
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(laplacian);
  Eigen::MatrixXd embedding = solver.eigenvectors().leftCols(clusters);  // [n, clusters], smallest eigenvalues
  for (Eigen::Index c = 0; c < clusters; ++c) {
    Eigen::Index largest = 0;
    embedding.col(c).cwiseAbs().maxCoeff(&largest);
    if (embedding(largest, c) < 0) embedding.col(c) *= -1.0;  // deterministic sign
  }
  embedding = inverse.asDiagonal() * embedding;
  return kmeans(embedding, clusters, seed, 10);
}

std::vector<int> balance_cluster_sizes(std::vector<int> labels, int clusters, const SquareMatrix& distances,
                                       const SquareMatrix& affinity, int tolerance) {
  if (tolerance < 1) throw std::invalid_argument("balance_cluster_sizes: tolerance must be >= 1");
  const std::size_t n = labels.size();
  while (true) {
    std::vector<int> sizes(static_cast<std::size_t>(clusters), 0);
    for (const int label : labels) ++sizes[label];
    const int largest = *std::max_element(sizes.begin(), sizes.end());
    const int smallest = *std::min_element(sizes.begin(), sizes.end());
    if (largest - smallest <= tolerance) return labels;

    // The best move from a largest cluster to a smallest one: (not a neighbour, mean distance, item, target).
    std::tuple<int, double, std::size_t, int> best{2, 0.0, 0, -1};
    for (std::size_t item = 0; item < n; ++item) {
      if (sizes[labels[item]] != largest) continue;
      for (int target = 0; target < clusters; ++target) {
        if (sizes[target] != smallest) continue;
        bool neighbour = false;
        for (std::size_t j = 0; j < n && !neighbour; ++j) {
          neighbour = labels[j] == target && affinity(item, j) > 0;
        }
        const std::tuple<int, double, std::size_t, int> move{
            neighbour ? 0 : 1, mean_distance(item, target, labels, distances), item, target};
        if (std::get<3>(best) < 0 || move < best) best = move;
      }
    }
    labels[std::get<2>(best)] = std::get<3>(best);
  }
}

std::vector<int> canonical_labels(const std::vector<int>& labels) {
  std::map<int, int> renumber;
  std::vector<int> result;
  for (const int label : labels) {
    const auto it = renumber.emplace(label, static_cast<int>(renumber.size())).first;
    result.push_back(it->second);
  }
  return result;
}

std::vector<int> equal_size_spectral_clustering(const SquareMatrix& distances,
                                                const EqualSizeClusteringOptions& options) {
  const int n = static_cast<int>(distances.n);
  if (options.clusters < 1 || options.clusters > n) {
    throw std::invalid_argument("equal_size_spectral_clustering: clusters must be in [1, n]");
  }
  const int neighbors = options.neighbors > 0 ? std::min(options.neighbors, n)
                                              : std::min(n, static_cast<int>(std::lround(std::sqrt(n))) + 1);
  const SquareMatrix affinity = knn_affinity(distances, neighbors);
  std::vector<int> labels = spectral_clustering(affinity, options.clusters, options.seed);
  labels = canonical_labels(labels);
  // k-means may leave a cluster empty when items coincide: balancing fills it.
  labels = balance_cluster_sizes(labels, options.clusters, distances, affinity, options.tolerance);
  return canonical_labels(labels);
}

}  // namespace svmoe
