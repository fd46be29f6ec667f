#include "svmoe/train/batches.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "test_support.h"

namespace svmoe {

namespace {
// A shard whose tokens are 0, 1, 2, ...: a window is identified by its first token.
std::filesystem::path counting_shard(const std::filesystem::path& dir, const std::string& name, int tokens,
                                     int offset) {
  TokenShardWriter writer(dir / name);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < tokens; ++i) ids.push_back(offset + i);
  writer.add_document(ids);
  writer.commit();
  return dir / name;
}
}  // namespace

TEST(WindowSampler, EveryWindowOncePerEpochInASeededOrder) {
  test::ScratchDir dir;
  const auto a = counting_shard(dir.path(), "a", 41, 0);     // 10 windows of 4 (+1)
  const auto b = counting_shard(dir.path(), "b", 21, 1000);  // 5 windows
  WindowSampler sampler({a, b}, 4, 7);
  ASSERT_EQ(sampler.windows_per_epoch(), 15u);
  const auto batch = sampler.next(15);
  std::set<std::int64_t> starts;
  for (int i = 0; i < 15; ++i) {
    starts.insert(batch[i][0].item<std::int64_t>());
    EXPECT_EQ(batch[i][4].item<std::int64_t>() - batch[i][0].item<std::int64_t>(), 4);  // consecutive tokens
  }
  EXPECT_EQ(starts.size(), 15u);
  EXPECT_EQ(sampler.position().epoch, 0u);
  sampler.next(1);
  EXPECT_EQ(sampler.position().epoch, 1u);  // the next epoch, reshuffled
}

TEST(WindowSampler, APositionReproducesTheSameBatches) {
  test::ScratchDir dir;
  const auto a = counting_shard(dir.path(), "a", 200, 0);
  WindowSampler first({a}, 8, 3);
  first.next(30);
  const SamplerPosition saved = first.position();
  const auto expected = first.next(12);
  WindowSampler second({a}, 8, 3);
  second.set_position(saved);
  EXPECT_TRUE(torch::equal(second.next(12), expected));
  WindowSampler other_seed({a}, 8, 4);
  EXPECT_FALSE(torch::equal(other_seed.next(12), WindowSampler({a}, 8, 3).next(12)));
}

}  // namespace svmoe
