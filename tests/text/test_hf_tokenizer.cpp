// tokenizer.json shapes of real model families against Hugging Face tokenizers 0.23 (its Node
// binding, scripts/reference/hf_tokenizers_reference.js): fixed strings committed in
// tests/data/tokenizers/<shape>/expected.json, and 5,000 seeded random strings per shape made
// at test time (HfTokenizersFuzz.MakeReference). Ids, pieces and decodes must all agree.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// Shapes made by the reference script, and the two converted SentencePiece fixtures.
const std::vector<std::string> kShapes = {"llm_jp_3",         "metaspace_nfkc_digits", "metaspace_nfkd_lowercase",
                                          "split_behaviours", "byte_level_llama3",     "byte_level_gpt2"};

std::string escaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else
      out += c;
  }
  return out.size() > 160 ? out.substr(0, 160) + "..." : out;
}

std::string ids_text(const std::vector<std::int32_t>& ids) {
  std::ostringstream out;
  for (std::size_t i = 0; i < ids.size() && i < 40; ++i) out << (i ? " " : "") << ids[i];
  if (ids.size() > 40) out << " ...(" << ids.size() << ")";
  return out.str();
}

// Compares every string; reports the first few differences of each kind and counts them all.
void expect_same_as_hf(const std::string& shape, const fs::path& expected_file) {
  const auto e = nlohmann::json::parse(read_text_file(expected_file));
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / shape);
  const auto& strings = e.at("strings");
  ASSERT_GT(strings.size(), 0u);
  std::size_t id_mismatches = 0, piece_mismatches = 0, decode_mismatches = 0;
  for (std::size_t i = 0; i < strings.size(); ++i) {
    const auto text = strings[i].get<std::string>();
    const auto expected = e["ids_no_special"][i].get<std::vector<std::int32_t>>();
    const auto ids = tokenizer->encode(text, false);
    if (ids != expected && ++id_mismatches <= 5) {
      ADD_FAILURE() << shape << " #" << i << " '" << escaped(text) << "'\n  hf:    " << ids_text(expected)
                    << "\n  svmoe: " << ids_text(ids);
    }
    const auto with_special = e["ids_with_special"][i].get<std::vector<std::int32_t>>();
    if (tokenizer->encode(text, true) != with_special && ++id_mismatches <= 5) {
      ADD_FAILURE() << shape << " #" << i << " with special tokens '" << escaped(text) << "'";
    }
    std::vector<std::string> pieces;
    for (const auto id : expected) pieces.push_back(tokenizer->piece(id));
    if (pieces != e["pieces_no_special"][i].get<std::vector<std::string>>() && ++piece_mismatches <= 5) {
      ADD_FAILURE() << shape << " #" << i << " pieces differ for '" << escaped(text) << "'";
    }
    for (const bool skip : {true, false}) {
      const auto decoded = tokenizer->decode(with_special, skip);
      const auto expected_decode = e[skip ? "decode" : "decode_with_special"][i].get<std::string>();
      if (decoded != expected_decode && ++decode_mismatches <= 5) {
        ADD_FAILURE() << shape << " #" << i << " decode(skip_special=" << skip << ") of '" << escaped(text)
                      << "'\n  hf:    '" << escaped(expected_decode) << "'\n  svmoe: '" << escaped(decoded) << "'";
      }
    }
  }
  EXPECT_EQ(id_mismatches, 0u) << shape << ": strings whose ids differ, of " << strings.size();
  EXPECT_EQ(piece_mismatches, 0u) << shape;
  EXPECT_EQ(decode_mismatches, 0u) << shape;
}

}  // namespace

class HfTokenizerReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTokenizerReference, FixedStringsMatchHuggingFaceTokenizers) {
  expect_same_as_hf(GetParam(), test::data_dir() / "tokenizers" / GetParam() / "expected.json");
}

INSTANTIATE_TEST_SUITE_P(Shapes, HfTokenizerReference, ::testing::ValuesIn(kShapes));

class HfTokenizersFuzz : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTokenizersFuzz, RandomStringsMatchHuggingFaceTokenizers) {
  const fs::path file = fs::path(SVMOE_REFERENCE_DIR) / "tokenizers" / (GetParam() + ".fuzz.json");
  ASSERT_TRUE(fs::exists(file)) << file << " is missing: the CTest fixture HfTokenizersFuzz.MakeReference makes it "
                                << "(scripts/reference/hf-tokenizers.sh fuzz)";
  expect_same_as_hf(GetParam(), file);
}

INSTANTIATE_TEST_SUITE_P(Shapes, HfTokenizersFuzz,
                         ::testing::Values("llm_jp_3", "metaspace_nfkc_digits", "metaspace_nfkd_lowercase",
                                           "split_behaviours", "byte_level_llama3", "byte_level_gpt2", "unigram",
                                           "bpe"));

TEST(HfTokenizer, UnsupportedComponentsNameTheirPath) {
  test::ScratchDir dir;
  auto json = nlohmann::json::parse(read_text_file(test::data_dir() / "tokenizers" / "llm_jp_3" / "tokenizer.json"));
  json["normalizer"]["normalizers"][1] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  test::write_text(dir / "tokenizer.json", json.dump());
  const auto message = test::error_message<UnsupportedError>([&] { load_hf_tokenizer(dir / "tokenizer.json"); });
  EXPECT_NE(message.find("normalizer.normalizers[1] is a 'Precompiled' normalizer"), std::string::npos) << message;

  json =
      nlohmann::json::parse(read_text_file(test::data_dir() / "tokenizers" / "byte_level_llama3" / "tokenizer.json"));
  json["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  test::write_text(dir / "tokenizer.json", json.dump());
  const auto regex_message = test::error_message<FormatError>([&] { load_hf_tokenizer(dir / "tokenizer.json"); });
  EXPECT_NE(regex_message.find("pre_tokenizer.pretokenizers[0].pattern"), std::string::npos) << regex_message;
  EXPECT_NE(regex_message.find("(unclosed"), std::string::npos) << regex_message;
}

TEST(HfTokenizer, InvalidUtf8IsReadAsHuggingFaceWouldReceiveIt) {
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "llm_jp_3");
  // Python and Rust strings cannot hold invalid UTF-8: a corpus byte that is not UTF-8 is read
  // as U+FFFD, as Python's errors="replace" does.
  EXPECT_EQ(tokenizer->encode("a\xFF"
                              "b",
                              false),
            tokenizer->encode("a\xEF\xBF\xBD"
                              "b",
                              false));
}

TEST(HfTokenizer, TokenizerConfigAddBosAndEosRebuildTheTemplate) {
  test::ScratchDir dir;
  fs::copy_file(test::data_dir() / "tokenizers" / "llm_jp_3" / "tokenizer.json", dir / "tokenizer.json");
  test::write_text(dir / "tokenizer_config.json",
                   R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true})");
  const auto tokenizer = load_tokenizer(dir.path());
  const auto ids = tokenizer->encode("abc", true);
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(tokenizer->encode("abc", false), std::vector<std::int32_t>(ids.begin(), ids.end() - 1));
}

}  // namespace svmoe
