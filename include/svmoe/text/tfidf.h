// TF-IDF over token ids (SPEC.md §2.5): scikit-learn's TfidfVectorizer defaults, with each
// "document" given as its token counts: tf = raw count (or, sublinear_tf, 1 + ln count),
// idf = ln((1 + n_docs) / (1 + df)) + 1, each row L2-normalised.
#pragma once

#include <cstdint>
#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

// A sparse row: token ids in increasing order and their values.
struct SparseRow {
  std::vector<std::int32_t> ids;
  std::vector<double> values;
};

// Token counts of each document over a vocabulary of `counts[d].size()` tokens.
using TokenCounts = std::vector<std::vector<std::uint64_t>>;

// [documents][vocab] counts -> L2-normalised TF-IDF rows.
std::vector<SparseRow> tfidf_rows(const TokenCounts& counts, TermFrequency tf = TermFrequency::kRaw);

// The router's teacher (SPEC.md §2.4): each token's column of the N subdomain rows, normalised
// to sum 1. Returns [vocab][N] row-major; `has_target[t]` is false for tokens in no subdomain
// (their column is all zero and is left zero here).
struct TfidfTargets {
  std::vector<float> targets;  // [vocab * N]
  std::vector<bool> has_target;
};
TfidfTargets normalise_token_columns(const std::vector<SparseRow>& rows, std::int64_t vocab_size);
// The teacher from the subdomains' token counts: normalise_token_columns(tfidf_rows(counts, tf)).
TfidfTargets router_teacher(const TokenCounts& subdomain_counts, TermFrequency tf = TermFrequency::kRaw);

// Cosine distances 1 - <a, b> between L2-normalised rows: [rows * rows] row-major.
std::vector<double> cosine_distances(const std::vector<SparseRow>& rows);

// Cosine distances among the documents `among` (e.g. the unpinned categories), their TF-IDF
// taken over all documents: SPEC.md §2.1 treats each of the M categories, pinned or not, as one
// document of the idf. [among * among] row-major.
std::vector<double> cosine_distances_among(const TokenCounts& counts, const std::vector<std::size_t>& among);

}  // namespace svmoe
