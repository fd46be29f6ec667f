#include "svmoe/util/files.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

TEST(AtomicFileWriter, ReplacesTheFileOnlyOnCommit) {
  test::ScratchDir dir;
  const fs::path path = dir / "out.txt";
  write_file_atomically(path, "old");
  {
    AtomicFileWriter writer(path);
    writer.write("new content");
    EXPECT_EQ(read_text_file(path), "old");  // not visible before commit
    writer.commit();
  }
  EXPECT_EQ(read_text_file(path), "new content");
}

TEST(AtomicFileWriter, LeavesNothingBehindWhenAbandoned) {
  test::ScratchDir dir;
  const fs::path path = dir / "out.txt";
  write_file_atomically(path, "kept");
  {
    AtomicFileWriter writer(path);
    writer.write("half-written");
  }  // destroyed without commit, as when an exception unwinds
  EXPECT_EQ(read_text_file(path), "kept");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(AtomicFileWriter, NamesTheFileWhenTheDirectoryIsMissing) {
  test::ScratchDir dir;
  const std::string message =
      test::error_message<IoError>([&] { AtomicFileWriter writer(dir / "no_such_dir" / "x.txt"); });
  EXPECT_NE(message.find("no_such_dir"), std::string::npos) << message;
}

namespace {

void write_gzip(const fs::path& path, const std::string& text) {
  gzFile gz = ::gzopen(path.c_str(), "wb");
  ::gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  ::gzclose(gz);
}

std::vector<std::string> all_lines(const fs::path& path) {
  LineReader reader(path);
  std::vector<std::string> lines;
  for (std::string line; reader.next(line);) lines.push_back(line);
  std::string extra;
  EXPECT_FALSE(reader.next(extra));  // asking again at the end is no error either
  return lines;
}

}  // namespace

// zlib 1.3 reports "unexpected end of file" for a read after the end of a complete stream
// (1.2 did not): the reader never makes one, with or without a final newline.
TEST(LineReader, ReadsGzipToTheEndOnEveryZlib) {
  test::ScratchDir dir;
  using Lines = std::vector<std::string>;
  write_gzip(dir / "no_newline.gz", "one\r\ntwo\nthree");
  EXPECT_EQ(all_lines(dir / "no_newline.gz"), (Lines{"one", "two", "three"}));
  write_gzip(dir / "newline.gz", "one\n\ntwo\n");
  EXPECT_EQ(all_lines(dir / "newline.gz"), (Lines{"one", "", "two"}));
  test::write_text(dir / "plain.txt", "x\ny");
  EXPECT_EQ(all_lines(dir / "plain.txt"), (Lines{"x", "y"}));
  write_gzip(dir / "long.gz", std::string(200000, 'a') + "\nb");
  EXPECT_EQ(all_lines(dir / "long.gz").at(0).size(), 200000u);
}

TEST(LineReader, TruncatedGzipIsAFormatError) {
  test::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i * 7919 % 1000) + "\n";
  write_gzip(dir / "full.gz", text);
  const std::string bytes = read_text_file(dir / "full.gz");
  std::ofstream(dir / "cut.gz", std::ios::binary) << bytes.substr(0, bytes.size() - 12);
  const auto message = test::error_message<FormatError>([&] { all_lines(dir / "cut.gz"); });
  EXPECT_NE(message.find("cut.gz' cannot be read past line"), std::string::npos) << message;
}

TEST(MappedFile, MapsContentsCopyOnWrite) {
  test::ScratchDir dir;
  write_file_atomically(dir / "f.bin", "abcdef");
  {
    const auto file = MappedFile::open(dir / "f.bin");
    ASSERT_EQ(file->size(), 6u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), 6), "abcdef");
    file->data()[0] = 'X';  // private page: the file stays as it was
  }
  EXPECT_EQ(read_text_file(dir / "f.bin"), "abcdef");
  EXPECT_THROW(MappedFile::open(dir / "missing.bin"), IoError);
}

}  // namespace svmoe
