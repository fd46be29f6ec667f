// tokenizer.json decoders (hf_decoders.cpp).
#include "svmoe/text/hf_components.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

using Json = nlohmann::json;

TEST(HfDecoders, ByteFallbackFuseStripMetaspace) {
  const JsonLocation where{"tokenizer.json", "decoder"};
  const auto llama = parse_decoder(Json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})"),
                                   where);
  EXPECT_EQ(llama->decode_chain({"\u2581Hi", "<0xE3>", "<0x81>", "<0x82>", "\u2581x"}),
            (std::vector<std::string>{"Hi\u3042 x"}));
  // A run of byte pieces that is not UTF-8 as a whole becomes one U+FFFD per byte.
  EXPECT_EQ(llama->decode_chain({"\u2581Hi", "<0xE3>", "<0x81>", "<0x82>", "<0xFF>", "\u2581x"}),
            (std::vector<std::string>{"Hi\uFFFD\uFFFD\uFFFD\uFFFD x"}));
  const auto metaspace =
      parse_decoder({{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}}, where);
  // tokenizers drops every replacement character of the first token, and spaces the rest.
  EXPECT_EQ(metaspace->decode_chain({"\u2581\u2581a", "\u2581b"}), (std::vector<std::string>{"a", " b"}));
  const auto byte_level = parse_decoder({{"type", "ByteLevel"}}, where);
  EXPECT_EQ(byte_level->decode_chain({"\xC4\xA0Hello", "\xC4\xA0world"}), (std::vector<std::string>{" Hello world"}));
}

}  // namespace svmoe
