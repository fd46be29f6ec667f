// Tokenizers against Hugging Face tokenizers 0.23 (tokenizer.json) and sentencepiece 0.2
// (tokenizer.model) on 199 strings: English, Japanese, digits, emoji, control bytes, spaces.
#include "svmoe/text/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

struct Expected {
  std::vector<std::string> strings;
  std::vector<std::vector<std::int32_t>> sentencepiece_ids, hf_no_special, hf_with_special;
  std::vector<std::string> hf_decode;
};

Expected read_expected(const std::string& kind) {
  const auto json = nlohmann::json::parse(read_text_file(test::data_dir() / "tokenizers" / kind / "expected.json"));
  Expected e;
  e.strings = json.at("strings").get<std::vector<std::string>>();
  e.sentencepiece_ids = json.at("sentencepiece_ids").get<std::vector<std::vector<std::int32_t>>>();
  e.hf_no_special = json.at("hf_tokenizers_ids_no_special").get<std::vector<std::vector<std::int32_t>>>();
  e.hf_with_special = json.at("hf_tokenizers_ids_with_special").get<std::vector<std::vector<std::int32_t>>>();
  e.hf_decode = json.at("hf_decode").get<std::vector<std::string>>();
  return e;
}

fs::path tokenizer_dir(const std::string& kind) { return test::data_dir() / "tokenizers" / kind; }

}  // namespace

class TokenizerReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerReference, TokenizerJsonMatchesHuggingFaceTokenizers) {
  const Expected e = read_expected(GetParam());
  const auto tokenizer = load_hf_tokenizer(tokenizer_dir(GetParam()) / "tokenizer.json");
  ASSERT_EQ(e.strings.size(), 199u);
  int mismatches = 0;
  for (std::size_t i = 0; i < e.strings.size(); ++i) {
    const auto ids = tokenizer->encode(e.strings[i], false);
    if (ids != e.hf_no_special[i]) {
      ++mismatches;
      ADD_FAILURE() << GetParam() << " string #" << i << " '" << e.strings[i] << "'";
    }
    EXPECT_EQ(tokenizer->encode(e.strings[i], true), e.hf_with_special[i]) << i;
    EXPECT_EQ(tokenizer->decode(e.hf_no_special[i]), e.hf_decode[i]) << i;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(TokenizerReference, SentencePieceModelMatchesSentencePiece) {
  const Expected e = read_expected(GetParam());
  const auto tokenizer = load_sentencepiece_tokenizer(tokenizer_dir(GetParam()) / "tokenizer.model");
  for (std::size_t i = 0; i < e.strings.size(); ++i) {
    EXPECT_EQ(tokenizer->encode(e.strings[i], false), e.sentencepiece_ids[i]) << i << " '" << e.strings[i] << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerReference, ::testing::Values("unigram", "bpe"));

TEST(Tokenizer, DecodingRoundTripsText) {
  for (const std::string kind : {"unigram", "bpe"}) {
    const auto tokenizer = load_tokenizer(tokenizer_dir(kind));
    for (const std::string text : {"Hello world.", "日本国憲法 第九条", "emoji 😀 and digits 2024", "tab\there"}) {
      EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, true)), text) << kind;
    }
  }
}

TEST(Tokenizer, SpecialTokensAndIds) {
  const auto tokenizer = load_tokenizer(tokenizer_dir("unigram"));
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->vocab_size(), 3000);
  EXPECT_EQ(tokenizer->piece(1), "<s>");
  // Added tokens written in the text are recognised, as in `tokenizers`.
  const auto ids = tokenizer->encode("a</s>b", false);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 2), ids.end());
  EXPECT_EQ(tokenizer->decode({1, 2}, true), "");
  EXPECT_EQ(tokenizer->decode({1}, false), "<s>");
}

TEST(Tokenizer, PrefersTokenizerJsonInADirectory) {
  const auto tokenizer = load_tokenizer(tokenizer_dir("bpe"));
  EXPECT_NE(tokenizer->description().find("tokenizer.json"), std::string::npos) << tokenizer->description();
  EXPECT_NE(tokenizer->description().find("BPE"), std::string::npos);
}

TEST(Tokenizer, ClearErrorsForBadFiles) {
  test::ScratchDir dir;
  EXPECT_THROW(load_tokenizer(dir.path()), IoError);
  test::write_text(dir / "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  EXPECT_THROW(load_tokenizer(dir.path()), UnsupportedError);
  test::write_text(dir / "tokenizer.json", "{ not json");
  EXPECT_THROW(load_tokenizer(dir.path()), FormatError);
}

TEST(Tokenizer, AModelsOwnTokenizerFilesWinOverTheFallback) {
  const auto with_files = test::data_dir() / "tokenizers" / "unigram";
  EXPECT_EQ(tokenizer_source(with_files, "/fallback"), with_files);
  EXPECT_EQ(tokenizer_source(test::model_fixture("llama_mha_untied"), "/fallback"), "/fallback");
}

}  // namespace svmoe
