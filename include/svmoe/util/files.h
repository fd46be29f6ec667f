// File helpers: atomic writes (temporary name, fsync, rename) and read-only memory maps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "svmoe/util/decompression.h"

namespace svmoe {

// Writes a file under a temporary name beside `path`; commit() fsyncs it and renames it over
// `path`, so a reader sees the old file or the complete new one, never a part. Destroyed
// without commit() (an exception, an interrupted run), the temporary file is removed.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_path_;
  int fd_ = -1;
};

void write_file_atomically(const std::filesystem::path& path, std::string_view content);

std::string read_text_file(const std::filesystem::path& path);

// fsync a directory, so that renames inside it survive a crash.
void sync_directory(const std::filesystem::path& directory);

// The directory an output is built in before it is complete: DIR.partial (emptied first).
std::filesystem::path begin_directory(const std::filesystem::path& directory);
// Renames the complete DIR.partial to DIR, replacing an older DIR whole. A reader sees the
// old directory or the new one; an interrupted run leaves only DIR.partial, which no stage reads.
void commit_directory(const std::filesystem::path& directory);

// Reads a text file line by line, plain or compressed (gzip, Zstandard: util/decompression.h),
// without its newline ("\r\n" too). Memory: one chunk and the longest line.
class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its newline; false at the end of the file. FormatError naming the
  // file and the last good line where compressed data is damaged or truncated.
  bool next(std::string& line);
  std::uint64_t line_number() const { return line_number_; }

 private:
  std::filesystem::path path_;
  std::unique_ptr<DecompressingReader> input_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0;
  bool at_end_ = false;
  std::uint64_t line_number_ = 0;
};

// A whole file mapped read-only-shared / copy-on-write: tensors can view it without a copy,
// and a write to such a tensor touches only a private page, never the file.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  // Lets the kernel drop the whole pages inside [offset, offset + length) from memory; they are
  // read from the file again if touched. For streaming over files larger than memory. Pages a
  // tensor view wrote to (copy-on-write) must not be released: their changes would be lost.
  void release(std::size_t offset, std::size_t length) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace svmoe
