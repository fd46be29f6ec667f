#include "svmoe/util/decompression.h"

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <vector>

#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = 1 << 18;

// gzip and plain files: zlib's gzread reads both (a plain file passes through as it is).
class GzipReader : public DecompressingReader {
 public:
  GzipReader(const fs::path& path, Compression compression) : path_(path), compression_(compression) {
    file_ = ::gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw IoError(describe_errno("cannot open '" + path.string() + "'"));
    ::gzbuffer(file_, kChunk);
  }
  ~GzipReader() override { ::gzclose(file_); }

  std::size_t read(char* out, std::size_t size) override {
    // zlib 1.3 reports a read after the end of a complete stream as an error: none is made.
    if (at_end_) return 0;
    const int got = ::gzread(file_, out, static_cast<unsigned>(size));
    int code = Z_OK;
    const char* message = ::gzerror(file_, &code);
    if (got < 0 || (code != Z_OK && code != Z_STREAM_END)) {
      throw FormatError(std::string("gzip data damaged or truncated (zlib: ") + message + ")");
    }
    at_end_ = ::gzeof(file_) != 0;
    return static_cast<std::size_t>(got);
  }
  Compression compression() const override { return compression_; }

 private:
  fs::path path_;
  Compression compression_;
  gzFile file_ = nullptr;
  bool at_end_ = false;
};

// Zstandard: the compressed bytes in chunks through one ZSTD_DStream. ZSTD_decompressStream
// returns 0 exactly where a frame ends and all of it has been handed out, so a file that ends
// elsewhere is truncated.
class ZstdReader : public DecompressingReader {
 public:
  explicit ZstdReader(const fs::path& path) : path_(path), chunk_(kChunk) {
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) throw IoError(describe_errno("cannot open '" + path.string() + "'"));
    stream_ = ZSTD_createDStream();
    if (stream_ == nullptr) {
      std::fclose(file_);
      throw IoError("cannot create a Zstandard decoder (out of memory)");
    }
  }
  ~ZstdReader() override {
    ZSTD_freeDStream(stream_);
    std::fclose(file_);
  }

  std::size_t read(char* out, std::size_t size) override {
    ZSTD_outBuffer output{out, size, 0};
    while (output.pos == 0) {
      if (input_.pos == input_.size && !file_end_) refill();
      if (input_.pos == input_.size && file_end_) {
        if (pending_ == 0) return 0;  // every frame complete
        // What the decoder still holds is handed out; if nothing comes, the last frame is cut.
        decode(output);
        if (output.pos == 0) {
          throw FormatError("Zstandard data truncated: the file ends inside a frame");
        }
        break;
      }
      decode(output);
    }
    return output.pos;
  }
  Compression compression() const override { return Compression::kZstd; }

 private:
  void refill() {
    const std::size_t got = std::fread(chunk_.data(), 1, chunk_.size(), file_);
    if (got == 0) {
      if (std::ferror(file_)) throw IoError(describe_errno("cannot read '" + path_.string() + "'"));
      file_end_ = true;
    }
    input_ = ZSTD_inBuffer{chunk_.data(), got, 0};
  }
  void decode(ZSTD_outBuffer& output) {
    pending_ = ZSTD_decompressStream(stream_, &output, &input_);
    if (ZSTD_isError(pending_)) {
      throw FormatError(std::string("Zstandard data damaged (libzstd: ") + ZSTD_getErrorName(pending_) + ")");
    }
  }

  fs::path path_;
  std::vector<char> chunk_;
  std::FILE* file_ = nullptr;
  ZSTD_DStream* stream_ = nullptr;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  std::size_t pending_ = 0;  // ZSTD_decompressStream's last hint: 0 at a frame's end
  bool file_end_ = false;
};

Compression sniff(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw IoError(describe_errno("cannot open '" + path.string() + "'"));
  unsigned char magic[4] = {0, 0, 0, 0};
  const std::size_t got = std::fread(magic, 1, sizeof(magic), file);
  std::fclose(file);
  if (got == 4 && magic[0] == 0x28 && magic[1] == 0xB5 && magic[2] == 0x2F && magic[3] == 0xFD) {
    return Compression::kZstd;
  }
  if (got >= 2 && magic[0] == 0x1F && magic[1] == 0x8B) return Compression::kGzip;
  return Compression::kNone;
}

}  // namespace

std::unique_ptr<DecompressingReader> DecompressingReader::open(const fs::path& path) {
  if (!fs::exists(path)) throw IoError("'" + path.string() + "' does not exist");
  const Compression compression = sniff(path);
  switch (compression) {
    case Compression::kZstd:
      return std::make_unique<ZstdReader>(path);
    case Compression::kGzip:
    case Compression::kNone:
      return std::make_unique<GzipReader>(path, compression);
  }
  return nullptr;  // unreachable
}

}  // namespace svmoe
