#include "svmoe/io/token_shards.h"

#include <cstring>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {
// The index file (token_shards.h): magic, format version, a reserved word, the document and
// token counts, then documents + 1 offsets into the .bin file's uint32 tokens.
constexpr char kMagic[8] = {'S', 'V', 'M', 'O', 'E', 'T', 'O', 'K'};
constexpr std::size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8;

fs::path with_suffix(const fs::path& prefix, const char* suffix) {
  fs::path path = prefix;
  path += suffix;
  return path;
}
}  // namespace

TokenShardWriter::TokenShardWriter(const fs::path& prefix)
    : prefix_(prefix), tokens_(std::make_unique<AtomicFileWriter>(with_suffix(prefix, ".bin"))) {}

TokenShardWriter::~TokenShardWriter() = default;

void TokenShardWriter::add_document(const std::vector<std::int32_t>& ids) {
  // Token ids are stored as uint32 (vocabularies stay far below 2^32); the document ends where
  // the next offset begins.
  buffer_.assign(ids.begin(), ids.end());
  tokens_->write(buffer_.data(), buffer_.size() * sizeof(std::uint32_t));
  offsets_.push_back(offsets_.back() + ids.size());
}

// The tokens first, then the index: a shard whose index exists is complete (prepare's resume
// trusts that).
void TokenShardWriter::commit() {
  tokens_->commit();
  AtomicFileWriter index(with_suffix(prefix_, ".idx"));
  const std::uint32_t version = kTokenShardVersion;
  const std::uint32_t reserved = 0;
  const std::uint64_t documents = offsets_.size() - 1;
  const std::uint64_t tokens = offsets_.back();
  index.write(kMagic, 8);
  index.write(&version, 4);
  index.write(&reserved, 4);
  index.write(&documents, 8);
  index.write(&tokens, 8);
  index.write(offsets_.data(), offsets_.size() * sizeof(std::uint64_t));
  index.commit();
}

TokenShard TokenShard::open(const fs::path& prefix) {
  TokenShard shard;
  const fs::path index_path = with_suffix(prefix, ".idx");
  shard.index_file_ = MappedFile::open(index_path);
  shard.token_file_ = MappedFile::open(with_suffix(prefix, ".bin"));
  auto corrupt = [&](const std::string& problem) {
    return FormatError("token shard '" + index_path.string() + "' " + problem, "re-run svmoe prepare");
  };
  const std::uint8_t* index = shard.index_file_->data();
  if (shard.index_file_->size() < kHeaderBytes || std::memcmp(index, kMagic, 8) != 0)
    throw corrupt("is not a token index");
  std::uint32_t version = 0;
  std::memcpy(&version, index + 8, 4);
  if (version > kTokenShardVersion) {
    throw FormatError("token shard '" + index_path.string() + "' has format version " + std::to_string(version) +
                          ", newer than this svmoe reads (" + std::to_string(kTokenShardVersion) + ")",
                      "use a newer svmoe, or re-run svmoe prepare with this one");
  }
  // Every count is checked against the files' sizes before a pointer into them is trusted: a
  // truncated or foreign file is a FormatError, never a read past the mapping.
  std::memcpy(&shard.documents_, index + 16, 8);
  std::memcpy(&shard.tokens_, index + 24, 8);
  if (shard.documents_ > (shard.index_file_->size() - kHeaderBytes) / 8 ||
      shard.index_file_->size() != kHeaderBytes + (shard.documents_ + 1) * 8) {
    throw corrupt("has a size that does not match its document count");
  }
  if (shard.token_file_->size() != shard.tokens_ * sizeof(std::uint32_t)) {
    throw corrupt("says " + std::to_string(shard.tokens_) + " tokens but its .bin file holds " +
                  std::to_string(shard.token_file_->size()) + " bytes");
  }
  shard.offsets_ = reinterpret_cast<const std::uint64_t*>(index + kHeaderBytes);
  for (std::uint64_t d = 0; d < shard.documents_; ++d) {
    if (shard.offsets_[d] > shard.offsets_[d + 1]) throw corrupt("has decreasing document offsets");
  }
  if (shard.offsets_[0] != 0 || shard.offsets_[shard.documents_] != shard.tokens_)
    throw corrupt("has offsets that do not span its tokens");
  shard.data_ = reinterpret_cast<const std::uint32_t*>(shard.token_file_->data());
  return shard;
}

std::vector<std::int32_t> TokenShard::document(std::uint64_t d) const {
  if (d >= documents_)
    throw Error("document " + std::to_string(d) + " is beyond the shard's " + std::to_string(documents_));
  return std::vector<std::int32_t>(data_ + offsets_[d], data_ + offsets_[d + 1]);
}

void TokenShard::copy_window(std::uint64_t window, std::uint64_t length, std::int64_t* out) const {
  if (window >= windows(length)) {
    throw Error("window " + std::to_string(window) + " of length " + std::to_string(length) + " is beyond the shard");
  }
  const std::uint32_t* begin = data_ + window * length;
  for (std::uint64_t i = 0; i <= length; ++i) out[i] = begin[i];
}

}  // namespace svmoe
