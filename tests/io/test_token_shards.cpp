#include "svmoe/io/token_shards.h"

#include <gtest/gtest.h>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {

TEST(TokenShards, RoundTripDocumentsAndWindows) {
  test::ScratchDir dir;
  TokenShardWriter writer(dir / "train");
  writer.add_document({5, 6, 7, 2});
  writer.add_document({});
  writer.add_document({8, 9, 2});
  writer.commit();
  const TokenShard shard = TokenShard::open(dir / "train");
  EXPECT_EQ(shard.documents(), 3u);
  EXPECT_EQ(shard.tokens(), 7u);
  EXPECT_EQ(shard.document(0), (std::vector<std::int32_t>{5, 6, 7, 2}));
  EXPECT_TRUE(shard.document(1).empty());
  EXPECT_EQ(shard.document(2), (std::vector<std::int32_t>{8, 9, 2}));
  // Windows of 3 inputs (+1 target): [5 6 7 2], [2 8 9 2]
  ASSERT_EQ(shard.windows(3), 2u);
  std::int64_t window[4];
  shard.copy_window(1, 3, window);
  EXPECT_EQ(std::vector<std::int64_t>(window, window + 4), (std::vector<std::int64_t>{2, 8, 9, 2}));
  EXPECT_THROW(shard.copy_window(2, 3, window), Error);
}

TEST(TokenShards, DamagedFilesAreClearErrors) {
  test::ScratchDir dir;
  TokenShardWriter writer(dir / "s");
  writer.add_document({1, 2, 3});
  writer.commit();
  const std::string tokens = read_text_file(dir / "s.bin");
  write_file_atomically(dir / "s.bin", tokens.substr(0, 8));
  const std::string message = test::error_message<FormatError>([&] { TokenShard::open(dir / "s"); });
  EXPECT_NE(message.find("says 3 tokens"), std::string::npos) << message;
  write_file_atomically(dir / "s.idx", "garbage");
  EXPECT_THROW(TokenShard::open(dir / "s"), FormatError);
}

TEST(TokenShards, NewerVersionIsRefusedWithAHint) {
  test::ScratchDir dir;
  TokenShardWriter writer(dir / "s");
  writer.commit();
  std::string index = read_text_file(dir / "s.idx");
  index[8] = 9;  // version 9
  write_file_atomically(dir / "s.idx", index);
  const std::string message = test::error_message<FormatError>([&] { TokenShard::open(dir / "s"); });
  EXPECT_NE(message.find("version 9"), std::string::npos) << message;
}

}  // namespace svmoe
