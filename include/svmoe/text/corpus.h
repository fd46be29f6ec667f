// Reading a corpus of categorised documents: JSON Lines, one {"text": ..., "category": ...}
// object per line (the fields configurable: top-level keys, or JSON pointers such as
// /meta/category into nested objects), plain, gzip- or Zstandard-compressed (told apart by their
// bytes; util/decompression.h), from files or directories of them. Streams: memory holds one
// line and one decompression window.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace svmoe {

class LineReader;

struct CorpusOptions {
  std::vector<std::filesystem::path> inputs;  // files, or directories searched for *.jsonl(.gz|.zst)
  std::string text_field = "text";            // a top-level key, or a JSON pointer ("/meta/text")
  std::string category_field = "category";
  bool skip_bad_lines = false;  // else a bad line is an error naming file and line
};

struct Document {
  std::string text;
  std::string category;
};

struct CorpusStats {
  std::uint64_t lines = 0;
  std::uint64_t documents = 0;        // non-empty documents returned
  std::uint64_t empty_documents = 0;  // skipped: empty text
  std::uint64_t bad_lines = 0;        // skipped with skip_bad_lines
  std::uint64_t bytes = 0;            // text bytes of the documents returned
};

// The corpus files named by `inputs`, directories expanded (sorted, recursively).
std::vector<std::filesystem::path> list_corpus_files(const std::vector<std::filesystem::path>& inputs);

class CorpusReader {
 public:
  // ConfigError where a field is empty or a malformed JSON pointer.
  explicit CorpusReader(CorpusOptions options);
  ~CorpusReader();

  // The next non-empty document; false at the end of the corpus.
  bool next(Document& document);
  const CorpusStats& stats() const { return stats_; }
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  struct Fields;
  CorpusOptions options_;
  std::unique_ptr<Fields> fields_;
  std::vector<std::filesystem::path> files_;
  std::size_t file_index_ = 0;
  std::unique_ptr<LineReader> reader_;
  CorpusStats stats_;
  std::string line_;
};

}  // namespace svmoe
