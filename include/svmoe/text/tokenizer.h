// Tokenizers: a Hugging Face `tokenizer.json` (Unigram or BPE, SentencePiece-style or
// byte-level), run by svmoe's own implementation of the `tokenizers` pipeline and checked id
// for id against it (docs/tokenizers.md), or a SentencePiece `tokenizer.model` run by
// libsentencepiece.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svmoe {

// The tokenizer files of a Hugging Face model directory, as transformers names them.
inline constexpr const char* kHfTokenizerFile = "tokenizer.json";             // Hugging Face tokenizers
inline constexpr const char* kSentencePieceFile = "tokenizer.model";          // SentencePiece's model
inline constexpr const char* kTokenizerConfigFile = "tokenizer_config.json";  // add_bos_token, ...
inline constexpr const char* kSpecialTokensMapFile = "special_tokens_map.json";
// All four: what a copy of a model's tokenizer takes.
const std::vector<std::string>& tokenizer_file_names();

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // With `add_special_tokens`, BOS/EOS are added as the tokenizer's own config says
  // (tokenizer.json: its post-processor; tokenizer.model: tokenizer_config.json's
  // add_bos_token / add_eos_token, true / false by default, as Llama's tokenizer).
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  virtual std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens = true) const = 0;

  virtual std::int64_t vocab_size() const = 0;
  virtual std::string piece(std::int32_t id) const = 0;
  virtual std::optional<std::int32_t> bos_id() const = 0;
  virtual std::optional<std::int32_t> eos_id() const = 0;
  // One line for logs and manifests, e.g. "tokenizer.json (Unigram, 99487 pieces)".
  virtual std::string description() const = 0;
  // Its make-up for `svmoe inspect`: model, pieces, added tokens, components.
  virtual std::string details() const { return description(); }
};

// Encodes many texts on `threads` threads (0: all cores), in order. Tokenizers are immutable,
// so one tokenizer serves every thread.
std::vector<std::vector<std::int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                                                    bool add_special_tokens, unsigned threads);

// `path`: a directory (tokenizer.json is preferred, as transformers does, else tokenizer.model),
// a tokenizer.json or a tokenizer.model file. tokenizer_config.json beside it is read if present.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// Where a model's tokenizer comes from: `model_dir` itself if it holds tokenizer.json or
// tokenizer.model (checkpoints svmoe writes carry them), else `fallback` (e.g. the dataset's).
std::filesystem::path tokenizer_source(const std::filesystem::path& model_dir, const std::filesystem::path& fallback);

// The file load_tokenizer reads for `path` (a directory's tokenizer.json, else its tokenizer.model).
std::filesystem::path tokenizer_file(const std::filesystem::path& path);

// What `svmoe inspect` says of the tokenizer in a model directory, one line each: the file svmoe
// reads (tokenizer.json over tokenizer.model, as transformers), its make-up and special ids, or
// why svmoe cannot read it.
std::vector<std::string> tokenizer_report(const std::filesystem::path& directory);

struct SentencePieceTrainOptions {
  std::filesystem::path input;         // text, one sentence per line
  std::filesystem::path model_prefix;  // writes PREFIX.model and PREFIX.vocab
  std::int64_t vocab_size = 8000;
  std::string model_type = "unigram";
  double character_coverage = 0.9995;
  std::int64_t input_sentence_size = 1000000;
  unsigned threads = 1;
  std::uint64_t seed = 0;
};
// Trains a SentencePiece model (unk 0, bos 1, eos 2, byte fallback, digits split) by running
// sentencepiece's spm_train program.
void train_sentencepiece(const SentencePieceTrainOptions& options);

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json);
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& tokenizer_model);

}  // namespace svmoe
