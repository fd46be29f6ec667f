#include "svmoe/util/files.h"

#include <gtest/gtest.h>

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
