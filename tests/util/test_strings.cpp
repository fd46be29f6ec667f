#include "svmoe/util/strings.h"

#include <gtest/gtest.h>

#include <ctime>
#include <regex>

namespace svmoe {

TEST(Strings, EditDistanceCountsEdits) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("device", "devcie"), 2u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
}

TEST(Strings, NearestWordSuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> keys = {"device", "log_level", "threads", "seed"};
  EXPECT_EQ(nearest_word("devcie", keys), "device");
  EXPECT_EQ(nearest_word("loglevel", keys), "log_level");
  EXPECT_EQ(nearest_word("completely_different", keys), "");
}

TEST(Strings, ValidatesUtf8) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("日本語の法令 😀"));
  EXPECT_FALSE(is_valid_utf8(std::string("\xC3\x28", 2)));          // bad continuation
  EXPECT_FALSE(is_valid_utf8(std::string("\xC0\xAF", 2)));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8(std::string("\xED\xA0\x80", 3)));      // surrogate
  EXPECT_FALSE(is_valid_utf8(std::string("\xE6\x97", 2)));          // truncated
  EXPECT_FALSE(is_valid_utf8(std::string("\xF4\x90\x80\x80", 4)));  // beyond U+10FFFF
}

TEST(Strings, FormatsCountsAndBytes) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(3ull << 30), "3.0 GiB");
}

TEST(Strings, EscapesHtml) {
  EXPECT_EQ(html_escape("a < b & \"c\" > d"), "a &lt; b &amp; &quot;c&quot; &gt; d");
  EXPECT_EQ(html_escape("日本語"), "日本語");
}

// ISO 8601 in UTC: read back by timegm, it lies between the times before and after the call.
TEST(Strings, UtcTimestampIsIso8601OfNow) {
  const std::time_t before = std::time(nullptr);
  const std::string stamp = utc_timestamp_now();
  ASSERT_TRUE(std::regex_match(stamp, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << stamp;
  std::tm parsed{};
  ASSERT_NE(strptime(stamp.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parsed), nullptr);
  const std::time_t read_back = timegm(&parsed);
  EXPECT_GE(read_back, before);
  EXPECT_LE(read_back, std::time(nullptr));
}

}  // namespace svmoe
