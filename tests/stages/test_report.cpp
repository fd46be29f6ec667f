#include "svmoe/stages/report.h"

#include <gtest/gtest.h>

namespace svmoe {

// The paper's Fig. 3 counts the test split's expert choices: the report draws the test split
// wherever eval.splits lists it (the paper config lists train, valid, test), else the first.
TEST(Report, ExpertSelectionIsDrawnForTheTestSplitWhereverItIsListed) {
  EXPECT_EQ(fig3_split({"train", "valid", "test"}), "test");
  EXPECT_EQ(fig3_split({"test", "train"}), "test");
  EXPECT_EQ(fig3_split({"valid", "train"}), "valid");
  EXPECT_EQ(fig3_split({}), "");
}

}  // namespace svmoe
