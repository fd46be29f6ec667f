// The tokenizer.json regex: Oniguruma's Ruby-syntax anchors and the onig crate's iteration
// (each expectation is what tokenizers' Replace/Split produce for the pattern).
#include "svmoe/text/regex.h"

#include <gtest/gtest.h>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace {

std::vector<std::string> matched(const Regex& regex, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& piece : regex.find_matches(text)) {
    if (piece.is_match) out.push_back(text.substr(piece.begin, piece.end - piece.begin));
  }
  return out;
}

}  // namespace

TEST(Regex, CaretMatchesAtLineStartsAsInRubySyntax) {
  EXPECT_EQ(Regex("^", "test").replace_all("ab\ncd", "X"), "Xab\nXcd");
  // llm-jp-3's normaliser: only the start of the text, not after a newline.
  EXPECT_EQ(Regex("(?<!\\n)^", "test").replace_all("ab\ncd", "X"), "Xab\ncd");
  EXPECT_EQ(Regex("(?<!\\n)^", "test").replace_all("", "X"), "");
  EXPECT_EQ(Regex("$", "test").replace_all("ab\ncd", "X"), "abX\ncdX");
}

TEST(Regex, EmptyMatchesFollowTheOnigIterator) {
  // An empty match right after a non-empty one is skipped; others are kept.
  EXPECT_EQ(Regex("a*", "test").replace_all("baaac", "-"), "-b-c-");
  EXPECT_EQ(matched(Regex("x*", "test"), "ab"), (std::vector<std::string>{"", "", ""}));
}

TEST(Regex, UnicodePropertiesAndClasses) {
  const Regex letters(" ?\\p{L}+", "test");
  EXPECT_EQ(matched(letters, "日本語 text 123"), (std::vector<std::string>{"日本語", " text"}));
  EXPECT_EQ(matched(Regex("\\s+", "test"), "a\u3000b"), (std::vector<std::string>{"\u3000"}));
  EXPECT_EQ(matched(Regex("(?i:'s)", "test"), "IT'S it's"), (std::vector<std::string>{"'S", "'s"}));
}

TEST(Regex, LiteralPatternsMatchAsWritten) {
  const Regex dot = Regex::literal(".*", "test");
  EXPECT_EQ(dot.replace_all("a.*b.*", "_"), "a_b_");
  const auto pieces = Regex::literal("\xE2\x96\x81", "test")
                          .find_matches(
                              "\xE2\x96\x81"
                              "a");
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_TRUE(pieces[0].is_match);
  EXPECT_FALSE(pieces[1].is_match);
}

TEST(Regex, ABadPatternNamesWhereItIs) {
  const auto message = test::error_message<FormatError>([] { Regex("(a", "'tok.json': normalizer.pattern"); });
  EXPECT_NE(message.find("'tok.json': normalizer.pattern"), std::string::npos) << message;
  EXPECT_NE(message.find("(a"), std::string::npos) << message;
}

TEST(Regex, LongRunsDoNotExhaustTheMatcher) {
  const std::string spaces(200000, ' ');
  const auto pieces = Regex("\\s+(?!\\S)|\\s+", "test").find_matches(spaces + "x");
  ASSERT_FALSE(pieces.empty());
  EXPECT_TRUE(pieces[0].is_match);
}

}  // namespace svmoe
