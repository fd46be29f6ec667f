// Causal-LM batches from token shards (SPEC.md §4): packed windows of T + 1 tokens (inputs are
// the first T, targets the last T), every window of every shard once per epoch, in an order
// shuffled with the seed and the epoch number. Its position is saved with checkpoints, so a
// resumed run reads exactly the batches the uninterrupted one would have.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "svmoe/io/token_shards.h"

namespace svmoe {

struct SamplerPosition {
  std::uint64_t epoch = 0;
  std::uint64_t index = 0;  // windows consumed in this epoch
};

class WindowSampler {
 public:
  // `prefixes`: shard prefixes (DATASET/subdomain_N/train); windows of `length` + 1 tokens.
  WindowSampler(const std::vector<std::filesystem::path>& prefixes, std::int64_t length, std::uint64_t seed);

  std::uint64_t windows_per_epoch() const { return locations_.size(); }
  // The next `batch` windows: int64 [batch, length + 1].
  torch::Tensor next(std::int64_t batch);

  const SamplerPosition& position() const { return position_; }
  void set_position(const SamplerPosition& position);

 private:
  struct Location {
    std::uint32_t shard;
    std::uint64_t window;
  };
  void shuffle_epoch();

  std::vector<TokenShard> shards_;
  std::vector<Location> locations_;  // this epoch's order
  std::int64_t length_;
  std::uint64_t seed_;
  SamplerPosition position_;
};

}  // namespace svmoe
