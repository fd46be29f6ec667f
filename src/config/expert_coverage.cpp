#include "svmoe/config/expert_coverage.h"

namespace svmoe {

std::vector<std::vector<std::int64_t>> expert_subdomains(ExpertCoverage coverage, std::int64_t num_subdomains) {
  // Subdomains: {0}, {1}, ...; pairs: {i, j} for i < j in lexicographic order, the order in
  // which the expert directories are numbered (the header's table).
  std::vector<std::vector<std::int64_t>> sets;
  for (std::int64_t i = 0; i < num_subdomains; ++i) {
    if (coverage == ExpertCoverage::kSubdomains) {
      sets.push_back({i});
      continue;
    }
    for (std::int64_t j = i + 1; j < num_subdomains; ++j) sets.push_back({i, j});
  }
  return sets;
}

}  // namespace svmoe
