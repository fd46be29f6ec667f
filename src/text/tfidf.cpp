#include "svmoe/text/tfidf.h"

#include <cmath>
#include <stdexcept>

namespace svmoe {

std::vector<SparseRow> tfidf_rows(const TokenCounts& counts, TermFrequency tf) {
  const std::size_t documents = counts.size();
  const std::size_t vocab = documents ? counts.front().size() : 0;
  // df_t: in how many documents (subdomains) token t occurs at least once.
  std::vector<std::uint64_t> document_frequency(vocab, 0);
  for (const auto& row : counts) {
    if (row.size() != vocab) throw std::invalid_argument("tfidf_rows: rows of different vocabulary sizes");
    for (std::size_t t = 0; t < vocab; ++t) document_frequency[t] += row[t] > 0 ? 1 : 0;
  }
  // Each row keeps only the tokens the document has (in id order, so rows merge in linear time in
  // cosine_distances), then is divided by its L2 norm.
  std::vector<SparseRow> rows(documents);
  for (std::size_t d = 0; d < documents; ++d) {
    double squared_norm = 0.0;
    for (std::size_t t = 0; t < vocab; ++t) {
      if (counts[d][t] == 0) continue;
      const double idf = std::log((1.0 + documents) / (1.0 + document_frequency[t])) + 1.0;  // smooth_idf
      const double count = static_cast<double>(counts[d][t]);
      double term_frequency = count;
      switch (tf) {
        case TermFrequency::kRaw:
          break;
        case TermFrequency::kSublinear:
          term_frequency = 1.0 + std::log(count);  // scikit-learn's sublinear_tf
          break;
      }
      const double value = term_frequency * idf;
      rows[d].ids.push_back(static_cast<std::int32_t>(t));
      rows[d].values.push_back(value);
      squared_norm += value * value;
    }
    if (squared_norm > 0) {
      const double norm = std::sqrt(squared_norm);
      for (auto& value : rows[d].values) value /= norm;
    }
  }
  return rows;
}

TfidfTargets normalise_token_columns(const std::vector<SparseRow>& rows, std::int64_t vocab_size) {
  const std::size_t n = rows.size();
  TfidfTargets result;
  result.targets.assign(static_cast<std::size_t>(vocab_size) * n, 0.0f);
  // Token t's teacher over the N subdomains is its column of the TF-IDF matrix over the column's
  // sum: how much of t's TF-IDF mass each subdomain holds (a distribution, SPEC.md §2.4). Stored
  // token-major ([vocab][N]) so a batch gathers its tokens' targets row by row.
  std::vector<double> column_sum(static_cast<std::size_t>(vocab_size), 0.0);
  for (const auto& row : rows) {
    for (std::size_t k = 0; k < row.ids.size(); ++k) column_sum[row.ids[k]] += row.values[k];
  }
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t k = 0; k < rows[r].ids.size(); ++k) {
      const auto t = static_cast<std::size_t>(rows[r].ids[k]);
      result.targets[t * n + r] = static_cast<float>(rows[r].values[k] / column_sum[t]);
    }
  }
  result.has_target.resize(static_cast<std::size_t>(vocab_size));
  for (std::size_t t = 0; t < column_sum.size(); ++t) result.has_target[t] = column_sum[t] > 0;
  return result;
}

TfidfTargets router_teacher(const TokenCounts& subdomain_counts, TermFrequency tf) {
  const auto vocab = static_cast<std::int64_t>(subdomain_counts.empty() ? 0 : subdomain_counts.front().size());
  return normalise_token_columns(tfidf_rows(subdomain_counts, tf), vocab);
}

// 1 - cos between every two rows (unit rows: cos is the dot product), symmetric, zero diagonal;
// clamped at 0 against rounding. The subdomain clustering's input (docs/prepare.md).
std::vector<double> cosine_distances(const std::vector<SparseRow>& rows) {
  const std::size_t n = rows.size();
  std::vector<double> distances(n * n, 0.0);
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = a + 1; b < n; ++b) {
      // Merge the two sorted id lists.
      double dot = 0.0;
      std::size_t i = 0, j = 0;
      while (i < rows[a].ids.size() && j < rows[b].ids.size()) {
        if (rows[a].ids[i] < rows[b].ids[j]) {
          ++i;
        } else if (rows[a].ids[i] > rows[b].ids[j]) {
          ++j;
        } else {
          dot += rows[a].values[i++] * rows[b].values[j++];
        }
      }
      distances[a * n + b] = distances[b * n + a] = std::max(0.0, 1.0 - dot);
    }
  }
  return distances;
}

std::vector<double> cosine_distances_among(const TokenCounts& counts, const std::vector<std::size_t>& among) {
  const auto all = tfidf_rows(counts);
  std::vector<SparseRow> rows;
  rows.reserve(among.size());
  for (const auto d : among) rows.push_back(all.at(d));
  return cosine_distances(rows);
}

}  // namespace svmoe
