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
  EXPECT_EQ(sampler.position()[0].epoch, 0u);
  sampler.next(1);
  EXPECT_EQ(sampler.position()[0].epoch, 1u);  // the next epoch, reshuffled
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

TEST(WindowSampler, RanksPartsMakeUpTheGlobalBatch) {
  test::ScratchDir dir;
  const auto a = counting_shard(dir.path(), "a", 300, 0);
  WindowSampler whole({a}, 8, 11);
  WindowSampler rank0({a}, 8, 11), rank1({a}, 8, 11);
  for (int step = 0; step < 5; ++step) {
    const auto global = whole.next(6);
    EXPECT_TRUE(torch::equal(torch::cat({rank0.next_part(3, 0, 2), rank1.next_part(3, 1, 2)}), global));
  }
  EXPECT_EQ(rank0.position()[0].index, whole.position()[0].index);
}

TEST(WindowSampler, AWeightedMixDrawsEachSourceByItsWeight) {
  test::ScratchDir dir;
  const auto a = counting_shard(dir.path(), "a", 401, 0);    // 100 windows of 4 (+1), tokens < 1000
  const auto b = counting_shard(dir.path(), "b", 41, 1000);  // 10 windows, tokens >= 1000
  WindowSampler sampler(std::vector<SamplerSource>{{{a}, 1.0}, {{b}, 3.0}}, 4, 2);
  const auto batch = sampler.next(80);
  std::int64_t from_b = 0;
  for (int i = 0; i < 80; ++i) from_b += batch[i][0].item<std::int64_t>() >= 1000 ? 1 : 0;
  EXPECT_EQ(from_b, 60);  // 3/4 of the draws, although b holds 1/11 of the windows (it cycles)
  const auto position = sampler.position();
  EXPECT_EQ(position[1].epoch, 5u);  // 60 draws of 10 windows: the sixth epoch just finished
  EXPECT_EQ(position[1].index, 10u);
  WindowSampler resumed(std::vector<SamplerSource>{{{a}, 1.0}, {{b}, 3.0}}, 4, 2);
  resumed.set_position(position);
  EXPECT_TRUE(torch::equal(resumed.next(9), sampler.next(9)));
}

}  // namespace svmoe
