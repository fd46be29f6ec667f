#include "svmoe/util/progress.h"

#include <gtest/gtest.h>

namespace svmoe {

TEST(Progress, DurationsReadAsAPersonWritesThem) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(42.4), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

TEST(Progress, ADisabledBarWritesNothing) {
  testing::internal::CaptureStderr();
  {
    ProgressBar bar(10, /*enabled=*/false);
    bar.update(5, "loss 1.0", 12);
    bar.clear();
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Progress, AnEnabledBarRedrawsOneLineAndErasesIt) {
  testing::internal::CaptureStderr();
  {
    ProgressBar bar(4, /*enabled=*/true);
    bar.update(4, "loss 1.2345 | 900 tok/s", 65);
  }
  const std::string drawn = testing::internal::GetCapturedStderr();
  EXPECT_NE(drawn.find("4/4 [##"), std::string::npos) << drawn;
  EXPECT_NE(drawn.find("loss 1.2345 | 900 tok/s | ETA 1m05s"), std::string::npos) << drawn;
  EXPECT_EQ(drawn.find('\n'), std::string::npos);         // never a new line
  EXPECT_EQ(drawn.substr(drawn.size() - 4), "\r\033[K");  // erased when done
}

}  // namespace svmoe
