#include "svmoe/text/clustering.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
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

// scikit-learn's discretize (Yu and Shi 2003, "Multiclass spectral clustering"): the embedding's
// columns scaled to length sqrt(n) and pointed away from the first item, rows to unit length;
// then alternately the labels as the argmax of the rotated rows and the rotation that best maps
// the rows onto their labels' indicator vectors (an SVD), until the normalised-cut objective
// stops changing (20 iterations at most). The rotation starts from a row drawn with `seed`.
std::vector<int> discretize(Eigen::MatrixXd vectors, std::uint64_t seed) {
  const Eigen::Index n = vectors.rows(), k = vectors.cols();
  const double norm_ones = std::sqrt(static_cast<double>(n));
  for (Eigen::Index c = 0; c < k; ++c) {
    const double norm = vectors.col(c).norm();
    if (norm > 0) vectors.col(c) *= norm_ones / norm;
    if (vectors(0, c) != 0) vectors.col(c) *= vectors(0, c) > 0 ? -1.0 : 1.0;
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const double norm = vectors.row(i).norm();
    if (norm > 0) vectors.row(i) /= norm;
  }
  std::mt19937_64 rng(seed);
  Eigen::MatrixXd rotation = Eigen::MatrixXd::Zero(k, k);  // [k, k]
  rotation.col(0) = vectors.row(std::uniform_int_distribution<Eigen::Index>(0, n - 1)(rng)).transpose();
  // The other columns: rows as orthogonal as possible to those picked so far.
  Eigen::VectorXd accumulated = Eigen::VectorXd::Zero(n);
  for (Eigen::Index j = 1; j < k; ++j) {
    accumulated += (vectors * rotation.col(j - 1)).cwiseAbs();
    Eigen::Index row = 0;
    accumulated.minCoeff(&row);
    rotation.col(j) = vectors.row(row).transpose();
  }
  std::vector<int> labels(static_cast<std::size_t>(n), 0);
  double last_objective = 0.0;
  for (int iteration = 1;; ++iteration) {
    const Eigen::MatrixXd rotated = vectors * rotation;        // [n, k]
    Eigen::MatrixXd label_sums = Eigen::MatrixXd::Zero(k, k);  // indicator^T x vectors
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::Index label = 0;
      rotated.row(i).maxCoeff(&label);
      labels[static_cast<std::size_t>(i)] = static_cast<int>(label);
      label_sums.row(label) += vectors.row(i);
    }
    const Eigen::JacobiSVD<Eigen::MatrixXd> svd(label_sums, Eigen::ComputeFullU | Eigen::ComputeFullV);
    const double objective = 2.0 * (static_cast<double>(n) - svd.singularValues().sum());
    if (std::abs(objective - last_objective) < std::numeric_limits<double>::epsilon() || iteration > 20) break;
    last_objective = objective;
    rotation = svd.matrixV() * svd.matrixU().transpose();
  }
  return labels;
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

std::vector<int> spectral_clustering(const SquareMatrix& affinity, int clusters, std::uint64_t seed,
                                     LabelAssignment assignment) {
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
  if (assignment == LabelAssignment::kDiscretize) return discretize(embedding, seed);
  return kmeans(embedding, clusters, seed, 10);
}

std::vector<int> equalize_cluster_sizes(std::vector<int> labels, int clusters, const SquareMatrix& distances,
                                        int neighbors, double equity_fraction) {
  const std::size_t n = labels.size();
  const int low = static_cast<int>(n) / clusters, remainder = static_cast<int>(n) % clusters;
  std::vector<int> ideal(static_cast<std::size_t>(clusters));
  for (int c = 0; c < clusters; ++c) ideal[c] = c < remainder ? low + 1 : low;
  const double min_range = low * equity_fraction;
  const double max_range = (remainder > 0 ? low + 1 : low) * (2.0 - equity_fraction);

  // Each cluster's neighbouring clusters in the initial labels: those of its members' nearest
  // min(30, neighbors) - 1 other items.
  const std::size_t near = static_cast<std::size_t>(std::max(0, std::min(30, neighbors - 1)));
  std::vector<std::set<int>> neighbouring(static_cast<std::size_t>(clusters));
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::size_t> order;
    for (std::size_t j = 0; j < n; ++j) {
      if (j != i) order.push_back(j);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return distances(i, a) < distances(i, b); });
    for (std::size_t r = 0; r < std::min(near, order.size()); ++r) {
      if (labels[order[r]] != labels[i]) neighbouring[labels[i]].insert(labels[order[r]]);
    }
  }
  auto sizes = [&] {
    std::vector<int> count(static_cast<std::size_t>(clusters), 0);
    for (const int label : labels) ++count[label];
    return count;
  };
  // Points sorted by their mean distance to the nearest of `targets` (ties: by index).
  struct Move {
    double distance;
    std::size_t item;
    int target;
  };
  auto nearest_moves = [&](const std::vector<std::size_t>& items, const std::vector<int>& targets) {
    std::vector<Move> moves;
    for (const auto item : items) {
      Move best{std::numeric_limits<double>::infinity(), item, -1};
      for (const int target : targets) {
        const double d = mean_distance(item, target, labels, distances);
        if (d < best.distance) best = {d, item, target};
      }
      if (best.target >= 0) moves.push_back(best);
    }
    std::stable_sort(moves.begin(), moves.end(), [](const Move& a, const Move& b) { return a.distance < b.distance; });
    return moves;
  };
  auto members_of = [&](auto&& keep) {
    std::vector<std::size_t> items;
    for (std::size_t i = 0; i < n; ++i) {
      if (keep(labels[i])) items.push_back(i);
    }
    return items;
  };

  // 1. Clusters above max_range give points, largest first, down to their ideal size.
  std::vector<int> count = sizes();
  std::vector<int> large;
  for (int c = 0; c < clusters; ++c) {
    if (count[c] > max_range) large.push_back(c);
  }
  std::stable_sort(large.begin(), large.end(), [&](int a, int b) { return count[a] > count[b]; });
  std::vector<int> receivers;
  for (int c = 0; c < clusters; ++c) {
    if (count[c] > 0 && std::find(large.begin(), large.end(), c) == large.end()) receivers.push_back(c);
  }
  for (const int giver : large) {
    const auto moves = nearest_moves(members_of([&](int label) { return label == giver; }), receivers);
    int leftovers = count[giver] - ideal[giver];
    for (const Move& move : moves) {
      if (leftovers <= 0) break;
      if (count[move.target] >= max_range) continue;
      if (neighbouring[giver].count(move.target) == 0) continue;
      labels[move.item] = move.target;
      --count[giver];
      ++count[move.target];
      --leftovers;
    }
    receivers.clear();
    for (int c = 0; c < clusters; ++c) {
      if (count[c] > 0 && count[c] < max_range) receivers.push_back(c);
    }
  }

  // 2. Clusters below min_range take the points of other clusters nearest to them.
  std::vector<int> small;
  for (int c = 0; c < clusters; ++c) {
    if (count[c] > 0 && count[c] < min_range) small.push_back(c);
  }
  if (!small.empty()) {
    const auto givers =
        members_of([&](int label) { return std::find(small.begin(), small.end(), label) == small.end(); });
    const auto moves = nearest_moves(givers, small);
    std::vector<double> needed(static_cast<std::size_t>(clusters), 0.0);
    for (const int c : small) needed[c] = min_range - count[c];
    for (const Move& move : moves) {
      const int current = labels[move.item];
      if (needed[move.target] <= 0) break;  // as the cited code: the first satisfied target ends the pass
      if (count[current] <= min_range) continue;
      if (neighbouring[current].count(move.target) == 0) continue;
      labels[move.item] = move.target;
      --count[current];
      ++count[move.target];
      needed[move.target] -= 1;
    }
  }

  // svmoe's addition: a cluster the initial labels left empty gets the item of the largest
  // cluster that is farthest from it (a subdomain needs a category).
  for (int c = 0; c < clusters; ++c) {
    if (count[c] > 0) continue;
    const int largest = static_cast<int>(std::max_element(count.begin(), count.end()) - count.begin());
    std::size_t farthest = n;
    double farthest_distance = -1.0;
    for (std::size_t i = 0; i < n; ++i) {
      if (labels[i] != largest) continue;
      const double d = mean_distance(i, largest, labels, distances);
      if (d > farthest_distance) farthest_distance = d, farthest = i;
    }
    labels[farthest] = c;
    --count[largest];
    ++count[c];
  }
  return labels;
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
  if (options.sizes == ClusterSizes::kEquity) {
    std::vector<int> labels =
        spectral_clustering(affinity, options.clusters, options.seed, LabelAssignment::kDiscretize);
    labels = equalize_cluster_sizes(labels, options.clusters, distances, neighbors, options.equity_fraction);
    return canonical_labels(labels);
  }
  std::vector<int> labels = spectral_clustering(affinity, options.clusters, options.seed);
  labels = canonical_labels(labels);
  // k-means may leave a cluster empty when items coincide: balancing fills it.
  labels = balance_cluster_sizes(labels, options.clusters, distances, affinity, options.tolerance);
  return canonical_labels(labels);
}

}  // namespace svmoe
