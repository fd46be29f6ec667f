#include "svmoe/text/tokenizer.h"

#include <algorithm>
#include <thread>

#include "svmoe/util/cpus.h"
#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

// Tokenisation is the CPU cost of prepare (a paper-size corpus is billions of characters):
// the texts are encoded on `threads` threads, each its own slice, the tokenizer shared read-only.
// An exception on a thread is kept and rethrown here after every thread has joined.
std::vector<std::vector<std::int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                                                    bool add_special_tokens, unsigned threads) {
  std::vector<std::vector<std::int32_t>> ids(texts.size());
  if (threads == 0) threads = available_cpus();
  threads = std::min<unsigned>(threads, static_cast<unsigned>(std::max<std::size_t>(1, texts.size())));
  // Interleaved, so that long and short documents spread over the threads.
  auto work = [&](unsigned first) {
    for (std::size_t i = first; i < texts.size(); i += threads) ids[i] = tokenizer.encode(texts[i], add_special_tokens);
  };
  if (threads == 1) {
    work(0);
    return ids;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        work(t);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& thread : pool) thread.join();
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  return ids;
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {kHfTokenizerFile, kSentencePieceFile, kTokenizerConfigFile,
                                                 kSpecialTokensMapFile};
  return names;
}

// A model directory carries its tokenizer when it was trained or merged by svmoe (the files are
// copied along); a checkpoint-N/ or a bare config does not, and the dataset's tokenizer serves.
fs::path tokenizer_source(const fs::path& model_dir, const fs::path& fallback) {
  const bool has_tokenizer = fs::exists(model_dir / kHfTokenizerFile) || fs::exists(model_dir / kSentencePieceFile);
  return has_tokenizer ? model_dir : fallback;
}

// tokenizer.json first, as transformers' AutoTokenizer prefers the fast tokenizer.
fs::path tokenizer_file(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / kHfTokenizerFile)) return path / kHfTokenizerFile;
    if (fs::exists(path / kSentencePieceFile)) return path / kSentencePieceFile;
    throw IoError("'" + path.string() + "' holds neither tokenizer.json nor tokenizer.model",
                  "give the model's directory, or the tokenizer file itself");
  }
  if (!fs::exists(path)) throw IoError("tokenizer '" + path.string() + "' does not exist");
  return path;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  const fs::path file = tokenizer_file(path);
  if (file.extension() == ".json") return load_hf_tokenizer(file);
  if (file.extension() == ".model") return load_sentencepiece_tokenizer(file);
  throw UsageError("'" + file.string() + "' is neither a tokenizer.json nor a SentencePiece .model file");
}

// svmoe inspect's tokenizer lines: which file is read, what it is, its special tokens; a file
// svmoe cannot read is reported, not thrown, so that inspect still describes the weights.
std::vector<std::string> tokenizer_report(const fs::path& directory) {
  const bool has_json = fs::exists(directory / kHfTokenizerFile);
  const bool has_model = fs::exists(directory / kSentencePieceFile);
  if (!has_json && !has_model) return {"none (no tokenizer.json or tokenizer.model)"};
  std::vector<std::string> lines;
  const fs::path file = has_json ? directory / kHfTokenizerFile : directory / kSentencePieceFile;
  lines.push_back(file.filename().string() +
                  (has_json && has_model
                       ? " (tokenizer.model is there too; svmoe reads tokenizer.json, as transformers "
                         "does)"
                       : ""));
  try {
    const auto tokenizer = load_tokenizer(file);
    lines.push_back(tokenizer->details());
    auto special = [&](const char* name, std::optional<std::int32_t> id) {
      return std::string(name) + " " + (id ? "'" + tokenizer->piece(*id) + "' (" + std::to_string(*id) + ")" : "none");
    };
    lines.push_back(std::to_string(tokenizer->vocab_size()) + " ids; " + special("bos", tokenizer->bos_id()) + ", " +
                    special("eos", tokenizer->eos_id()) + "; svmoe reads it");
  } catch (const Error& e) {
    lines.push_back("svmoe cannot read it: " + std::string(e.what()));
    if (!e.hint().empty()) lines.push_back("hint: " + e.hint());
  }
  return lines;
}

}  // namespace svmoe
