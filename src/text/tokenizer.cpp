#include "svmoe/text/tokenizer.h"

#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / "tokenizer.json")) return load_hf_tokenizer(path / "tokenizer.json");
    if (fs::exists(path / "tokenizer.model")) return load_sentencepiece_tokenizer(path / "tokenizer.model");
    throw IoError("'" + path.string() + "' holds neither tokenizer.json nor tokenizer.model",
                  "give the model's directory, or the tokenizer file itself");
  }
  if (!fs::exists(path)) throw IoError("tokenizer '" + path.string() + "' does not exist");
  if (path.extension() == ".json") return load_hf_tokenizer(path);
  if (path.extension() == ".model") return load_sentencepiece_tokenizer(path);
  throw UsageError("'" + path.string() + "' is neither a tokenizer.json nor a SentencePiece .model file");
}

}  // namespace svmoe
