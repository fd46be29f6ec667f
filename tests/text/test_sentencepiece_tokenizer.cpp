// libsentencepiece through svmoe's module (src/text/sentencepiece_module/). These tests load the
// module with RTLD_DEEPBIND, which AddressSanitizer's runtime refuses: scripts/test-sanitizers.sh
// leaves the suite out (the reference label compares the module with sentencepiece itself).
#include <gtest/gtest.h>

#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

TEST(SentencePieceTokenizer, ABrokenModelIsAFormatError) {
  test::ScratchDir dir;
  test::write_text(dir / "broken.model", "not a sentencepiece model");
  const std::string message =
      test::error_message<FormatError>([&] { load_sentencepiece_tokenizer(dir / "broken.model"); });
  EXPECT_NE(message.find("broken.model"), std::string::npos) << message;
}

TEST(SentencePieceTokenizer, TheModelAndItsTokenizerJsonAgree) {
  const auto fixture = test::data_dir() / "tokenizers" / "unigram";
  const auto model = load_sentencepiece_tokenizer(fixture / "tokenizer.model");
  const auto json = load_hf_tokenizer(fixture / "tokenizer.json");
  EXPECT_EQ(model->vocab_size(), json->vocab_size());
  const std::string text = "The quick brown fox jumps over the lazy dog.";
  EXPECT_EQ(model->encode(text, /*add_special_tokens=*/false), json->encode(text, /*add_special_tokens=*/false));
}

}  // namespace svmoe
