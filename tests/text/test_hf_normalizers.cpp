// tokenizer.json normalizers (hf_normalizers.cpp).
#include "svmoe/text/hf_components.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

using Json = nlohmann::json;

TEST(HfNormalizers, ReplacePrependStripLowercase) {
  const JsonLocation where{"tokenizer.json", "normalizer"};
  const auto normalizer = parse_normalizer(
      Json::parse(R"({"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": true, "strip_right": true},
        {"type": "Lowercase"}, {"type": "Prepend", "prepend": "_"}, {"type": "Replace", "pattern": {"Regex": "\\s+"},
        "content": " "}]})"),
      where);
  std::string text = "  Hello\t\tWORLD\u3000";
  normalizer->normalize(text);
  EXPECT_EQ(text, "_hello world");
  std::string empty;
  normalizer->normalize(empty);
  EXPECT_EQ(empty, "");  // Prepend leaves an empty text empty
}

TEST(HfNormalizers, UnknownTypesAreUnsupportedWithTheirPath) {
  const auto message = test::error_message<UnsupportedError>([] {
    parse_normalizer({{"type", "Precompiled"}}, JsonLocation{"t.json", "normalizer.normalizers[2]"});
  });
  EXPECT_NE(message.find("'t.json': normalizer.normalizers[2] is a 'Precompiled' normalizer"), std::string::npos)
      << message;
}

}  // namespace svmoe
