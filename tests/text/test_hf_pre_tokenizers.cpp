// tokenizer.json pre-tokenizers (hf_pre_tokenizers.cpp); the split behaviours are the examples
// of tokenizers' documentation ("the-final--countdown" split on "-").
#include "svmoe/text/hf_components.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {

using Json = nlohmann::json;
const JsonLocation kWhere{"tokenizer.json", "pre_tokenizer"};

std::vector<std::string> pre_tokenize(const Json& node, const std::string& text) {
  const auto pre_tokenizer = parse_pre_tokenizer(node, kWhere);
  std::vector<TextSplit> splits{{text, 1, std::nullopt}};
  pre_tokenizer->pre_tokenize(splits);
  std::vector<std::string> out;
  for (const auto& split : splits) out.push_back(split.text);
  return out;
}

std::vector<std::string> split_dash(const std::string& behavior) {
  return pre_tokenize({{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}},
                      "the-final--countdown");
}

}  // namespace

TEST(HfPreTokenizers, SplitBehavioursAsDocumented) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_dash("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split_dash("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split_dash("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split_dash("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split_dash("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
}

TEST(HfPreTokenizers, MetaspacePrependSchemes) {
  using V = std::vector<std::string>;
  const Json first = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(first, "Hey  friend"), (V{"\u2581Hey", "\u2581", "\u2581friend"}));
  const auto pre_tokenizer = parse_pre_tokenizer(first, kWhere);
  std::vector<TextSplit> later{{"Hey", 0, std::nullopt}};  // a piece after an added token
  pre_tokenizer->pre_tokenize(later);
  EXPECT_EQ(later.at(0).text, "Hey");
  const Json never = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", false}};
  EXPECT_EQ(pre_tokenize(never, "a b"), (V{"a\u2581b"}));
}

TEST(HfPreTokenizers, DigitsAndByteLevel) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "a12b"), (V{"a", "1", "2", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "a12b"), (V{"a", "12", "b"}));
  // GPT-2: "Hello world" -> "ĠHello", "Ġworld" with the prefix space.
  EXPECT_EQ(pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "Hello world"),
            (V{"\xC4\xA0Hello", "\xC4\xA0world"}));
}

TEST(HfPreTokenizers, UnknownTypesAreUnsupportedWithTheirPath) {
  const auto message = test::error_message<UnsupportedError>([] {
    parse_pre_tokenizer({{"type", "BertPreTokenizer"}}, JsonLocation{"t.json", "pre_tokenizer"});
  });
  EXPECT_NE(message.find("'t.json': pre_tokenizer is a 'BertPreTokenizer' pre-tokenizer"), std::string::npos)
      << message;
  const auto format = test::error_message<FormatError>([] {
    parse_pre_tokenizer({{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}},
                        JsonLocation{"t.json", "pre_tokenizer"});
  });
  EXPECT_NE(format.find("pre_tokenizer.behavior is 'Sideways'"), std::string::npos) << format;
}

}  // namespace svmoe
