// A file's bytes, whatever its compression, told apart by its first bytes (not its name):
// Zstandard (magic 28 B5 2F FD; libzstd's streaming decoder, one frame or several concatenated
// as `zstd` and `cat` make them), gzip (zlib; one member or several), or neither (the bytes as
// they are). Memory stays bounded: one input chunk and the decoder's window.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

namespace svmoe {

enum class Compression { kNone, kGzip, kZstd };

class DecompressingReader {
 public:
  // IoError when the file cannot be opened.
  static std::unique_ptr<DecompressingReader> open(const std::filesystem::path& path);
  virtual ~DecompressingReader() = default;

  // Up to `size` decompressed bytes into `out`; 0 at the end of the file. FormatError, naming the
  // decoder's complaint, on damaged or truncated compressed data.
  virtual std::size_t read(char* out, std::size_t size) = 0;
  virtual Compression compression() const = 0;
};

}  // namespace svmoe
