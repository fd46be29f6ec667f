// Unicode helpers against the Rust behaviour Hugging Face tokenizers inherits (values from
// the Unicode standard's tables and Rust's documentation).
#include "svmoe/text/unicode.h"

#include <gtest/gtest.h>

namespace svmoe::unicode {

TEST(Unicode, FromUtf8LossyReplacesEachMaximalInvalidSubpart) {
  EXPECT_EQ(from_utf8_lossy("plain ascii"), "plain ascii");
  EXPECT_EQ(from_utf8_lossy("\xE3\x81\x82"), "\xE3\x81\x82");                          // あ
  EXPECT_EQ(from_utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");                          // a truncated emoji: one U+FFFD
  EXPECT_EQ(from_utf8_lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // an overlong NUL: two
  EXPECT_EQ(from_utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate: three
  EXPECT_EQ(from_utf8_lossy("a\xFF"
                            "b"),
            "a\xEF\xBF\xBD"
            "b");
  // Unicode 15 §3.9 Table 3-8's example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(from_utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xEF\xBF\xBD\xEF\xBF\xBD"
            "d");
}

TEST(Unicode, ClassesFollowRustChar) {
  EXPECT_TRUE(is_whitespace(U'\u3000'));
  EXPECT_TRUE(is_whitespace(U'\u0085'));
  EXPECT_FALSE(is_whitespace(U'\u200B'));  // zero width space is not White_Space
  EXPECT_TRUE(is_numeric(U'\u00BD'));      // ½ (No)
  EXPECT_TRUE(is_numeric(U'\u216B'));      // Ⅻ (Nl)
  EXPECT_TRUE(is_numeric(U'\uFF11'));      // full-width 1 (Nd)
  EXPECT_FALSE(is_numeric(U'\u4E00'));     // 一 is a letter
  EXPECT_TRUE(is_word_character(U'\u3042'));
  EXPECT_TRUE(is_word_character(U'_'));
  EXPECT_FALSE(is_word_character(U'\u3002'));  // 。
  EXPECT_TRUE(is_combining_mark(U'\u0301'));
}

TEST(Unicode, LowercaseIsTheFullMapping) {
  EXPECT_EQ(lowercase("ABC \xC3\x84"), "abc \xC3\xA4");
  EXPECT_EQ(lowercase("\xC4\xB0"), "i\xCC\x87");                 // İ -> i + combining dot above
  EXPECT_EQ(lowercase("\xCE\xA3\xCE\xA3"), "\xCF\x83\xCF\x83");  // ΣΣ -> σσ (no final-sigma context per char)
}

TEST(Unicode, NormalizationForms) {
  EXPECT_EQ(normalize("\xEF\xBD\xB6\xEF\xBE\x9E", NormalizationForm::kNfkc), "\xE3\x82\xAC");  // ｶﾞ -> ガ
  EXPECT_EQ(normalize("\xEF\xBC\xA1", NormalizationForm::kNfkc), "A");                         // Ａ -> A
  EXPECT_EQ(normalize("e\xCC\x81", NormalizationForm::kNfc), "\xC3\xA9");                      // e + ́ -> é
  EXPECT_EQ(normalize("\xC3\xA9", NormalizationForm::kNfd), "e\xCC\x81");
  EXPECT_EQ(normalize("\xEF\xAC\x81", NormalizationForm::kNfkd), "fi");  // ﬁ
  EXPECT_EQ(normalize("\xEF\xAC\x81", NormalizationForm::kNfd), "\xEF\xAC\x81");
}

}  // namespace svmoe::unicode
