#include "svmoe/util/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "svmoe/util/decompression.h"
#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

// A file is written as PATH.tmp.PID beside its destination (same file system, so the rename is
// atomic; the PID keeps two writers apart), fsynced, renamed over PATH, and the directory fsynced
// so the rename survives a crash. Until commit() the old PATH is untouched; a writer destroyed
// without commit() removes its temporary.
AtomicFileWriter::AtomicFileWriter(fs::path path) : path_(std::move(path)) {
  temporary_path_ = path_;
  temporary_path_ += ".tmp." + std::to_string(::getpid());
  fd_ = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw IoError(describe_errno("cannot create '" + temporary_path_.string() + "'"),
                  "check that the directory exists and is writable");
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_path_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd_, bytes, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw IoError(describe_errno("cannot write '" + temporary_path_.string() + "'"), "check free disk space");
    }
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) throw IoError(describe_errno("cannot sync '" + temporary_path_.string() + "'"));
  ::close(fd_);
  fd_ = -1;
  if (::rename(temporary_path_.c_str(), path_.c_str()) != 0) {
    const std::string message =
        describe_errno("cannot rename '" + temporary_path_.string() + "' to '" + path_.string() + "'");
    ::unlink(temporary_path_.c_str());
    throw IoError(message);
  }
  sync_directory(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
}

void write_file_atomically(const fs::path& path, std::string_view content) {
  AtomicFileWriter writer(path);
  writer.write(content);
  writer.commit();
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(describe_errno("cannot open '" + path.string() + "'"));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void sync_directory(const fs::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // some file systems do not allow opening directories; the rename stands
  ::fsync(fd);
  ::close(fd);
}

// Directories the same way: built as DIR.partial, then swapped in by commit_directory. The old
// DIR is moved to DIR.previous before the new one takes its name, so DIR is never a mix of the
// two: it is the old directory, the new one, or (between the two renames) absent, with the old
// one complete at DIR.previous, which the next commit clears.
fs::path begin_directory(const fs::path& directory) {
  fs::path partial = directory;
  partial += ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);  // a leftover of an interrupted run
  fs::create_directories(partial, ec);
  if (ec)
    throw IoError("cannot create '" + partial.string() + "': " + ec.message(), "check the output path's permissions");
  return partial;
}

void commit_directory(const fs::path& directory) {
  fs::path partial = directory;
  partial += ".partial";
  fs::path previous = directory;
  previous += ".previous";
  sync_directory(partial);
  std::error_code ec;
  fs::remove_all(previous, ec);
  if (fs::exists(directory)) fs::rename(directory, previous);
  fs::rename(partial, directory);
  sync_directory(directory.has_parent_path() ? directory.parent_path() : fs::path("."));
  fs::remove_all(previous, ec);
}

LineReader::LineReader(const fs::path& path) : path_(path), input_(DecompressingReader::open(path)), buffer_(1 << 16) {}

LineReader::~LineReader() = default;

// Lines are cut from decompressed chunks: [begin_, end_) of buffer_ is what is not handed out yet.
bool LineReader::next(std::string& line) {
  line.clear();
  while (true) {
    const char* start = buffer_.data() + begin_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    if (newline != nullptr) {
      line.append(start, newline);
      begin_ += static_cast<std::size_t>(newline - start) + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      ++line_number_;
      return true;
    }
    line.append(start, end_ - begin_);
    begin_ = end_ = 0;
    if (at_end_) break;
    try {
      end_ = input_->read(buffer_.data(), buffer_.size());
    } catch (const FormatError& e) {
      throw FormatError(
          "'" + path_.string() + "' cannot be read past line " + std::to_string(line_number_) + ": " + e.what(),
          "is the compressed file truncated or damaged? Compare it with its source or download it "
          "again");
    }
    at_end_ = end_ == 0;
  }
  if (line.empty()) return false;
  ++line_number_;  // a last line without a newline
  return true;
}

// A private, writable mapping: LibTorch's from_blob wants a non-const pointer, and a tensor that
// is written to gets its own copy of the page (copy-on-write) instead of changing the file.
std::shared_ptr<MappedFile> MappedFile::open(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(describe_errno("cannot open '" + path.string() + "'"));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const std::string message = describe_errno("cannot stat '" + path.string() + "'");
    ::close(fd);
    throw IoError(message);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw IoError("'" + path.string() + "' is not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<std::size_t>(info.st_size);
  if (file->size_ > 0) {
    void* address = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const std::string message = describe_errno("cannot map '" + path.string() + "'");
      ::close(fd);
      throw IoError(message);
    }
    file->data_ = static_cast<std::uint8_t*>(address);
  }
  ::close(fd);
  return file;
}

void MappedFile::release(std::size_t offset, std::size_t length) const {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t begin = (offset + page - 1) / page * page;  // whole pages inside the range only
  const std::size_t end = std::min(offset + length, size_) / page * page;
  if (data_ != nullptr && end > begin) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace svmoe
