// Token shards: the tokenised documents of one subdomain and split, as two files.
//   PREFIX.bin  uint32 little-endian token ids, documents back to back (each ends with EOS)
//   PREFIX.idx  "SVMOETOK", u32 version (1), u32 0, u64 documents, u64 tokens, then
//               documents + 1 u64 token offsets (document d is [offset[d], offset[d+1]))
// TokenShard maps both files, so the trainer reads random windows without loading the shard.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

namespace svmoe {

class AtomicFileWriter;
class MappedFile;

inline constexpr std::uint32_t kTokenShardVersion = 1;

class TokenShardWriter {
 public:
  explicit TokenShardWriter(const std::filesystem::path& prefix);
  ~TokenShardWriter();

  void add_document(const std::vector<std::int32_t>& ids);
  // Writes the index and makes both files visible.
  void commit();

  std::uint64_t documents() const { return offsets_.size() - 1; }
  std::uint64_t tokens() const { return offsets_.back(); }

 private:
  std::filesystem::path prefix_;
  std::unique_ptr<AtomicFileWriter> tokens_;
  std::vector<std::uint64_t> offsets_{0};
  std::vector<std::uint32_t> buffer_;
};

class TokenShard {
 public:
  static TokenShard open(const std::filesystem::path& prefix);

  std::uint64_t documents() const { return documents_; }
  std::uint64_t tokens() const { return tokens_; }
  // Document d's tokens: [begin, end) into data().
  std::uint64_t document_begin(std::uint64_t d) const { return offsets_[d]; }
  std::uint64_t document_end(std::uint64_t d) const { return offsets_[d + 1]; }
  const std::uint32_t* data() const { return data_; }
  std::vector<std::int32_t> document(std::uint64_t d) const;

  // Packed causal-LM windows: window w holds tokens [w * length, w * length + length + 1), so
  // consecutive windows overlap by one token (the last target of one is the first input of the next).
  std::uint64_t windows(std::uint64_t length) const { return tokens_ > 0 ? (tokens_ - 1) / length : 0; }
  void copy_window(std::uint64_t window, std::uint64_t length, std::int64_t* out) const;

 private:
  std::shared_ptr<MappedFile> token_file_;
  std::shared_ptr<MappedFile> index_file_;
  const std::uint32_t* data_ = nullptr;
  const std::uint64_t* offsets_ = nullptr;
  std::uint64_t documents_ = 0;
  std::uint64_t tokens_ = 0;
};

}  // namespace svmoe
