#include "svmoe/config/expert_coverage.h"

#include <gtest/gtest.h>

namespace svmoe {

TEST(ExpertCoverage, OneSubdomainEachOrEveryPairInOrder) {
  using Sets = std::vector<std::vector<std::int64_t>>;
  EXPECT_EQ(expert_subdomains(ExpertCoverage::kSubdomains, 3), (Sets{{0}, {1}, {2}}));
  EXPECT_EQ(expert_subdomains(ExpertCoverage::kPairs, 3), (Sets{{0, 1}, {0, 2}, {1, 2}}));
  EXPECT_EQ(expert_subdomains(ExpertCoverage::kPairs, 8).size(), 28u);  // 8 choose 2
  EXPECT_EQ(expert_subdomains(ExpertCoverage::kPairs, 8)[7], (std::vector<std::int64_t>{1, 2}));
}

}  // namespace svmoe
