#include "svmoe/util/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace svmoe {

// The check value of CRC-32C and RFC 3720's test vectors (appendix B.4).
TEST(Crc32c, CheckValueAndRfc3720Vectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283U);
  EXPECT_EQ(crc32c(""), 0x00000000U);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAU);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43U);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending += static_cast<char>(i);
  EXPECT_EQ(crc32c(ascending), 0x46DD794EU);
}

}  // namespace svmoe
