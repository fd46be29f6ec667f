#include "svmoe/stages/report.h"

#include <gtest/gtest.h>

namespace svmoe {

// The paper's Fig. 3 counts the test split's expert choices: the report draws the test split
// wherever eval.splits lists it (the paper config lists train, valid, test), else the first.
TEST(Report, ExpertSelectionIsDrawnForTheTestSplitWhereverItIsListed) {
  using S = DataSplit;
  EXPECT_EQ(fig3_split({S::kTrain, S::kValid, S::kTest}), S::kTest);
  EXPECT_EQ(fig3_split({S::kTest, S::kTrain}), S::kTest);
  EXPECT_EQ(fig3_split({S::kValid, S::kTrain}), S::kValid);
  EXPECT_EQ(fig3_split({}), std::nullopt);
}

}  // namespace svmoe
