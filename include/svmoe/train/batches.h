// Causal-LM batches from token shards (SPEC.md §4): packed windows of T + 1 tokens (inputs are
// the first T, targets the last T).
//
// Windows come from one or more sources (a source = some shards, e.g. one subdomain's training
// split). Each source yields every one of its windows once per epoch, in an order shuffled with
// the seed, the source and the epoch number. With several sources the draws are blended by
// weight as Megatron-LM blends datasets: draw i comes from the source whose share lags most
// behind its weight, so after any number of draws each source's count is within one of its
// share. The position is saved with checkpoints, so a resumed run reads exactly the batches the
// uninterrupted one would have.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "svmoe/io/token_shards.h"

namespace svmoe {

struct SamplerSource {
  std::vector<std::filesystem::path> prefixes;  // shard prefixes (DATASET/subdomain_N/train)
  double weight = 1.0;
};

struct SourcePosition {
  std::uint64_t epoch = 0;
  std::uint64_t index = 0;  // windows consumed in this epoch
};
using SamplerPosition = std::vector<SourcePosition>;  // one per source; empty: the start

class WindowSampler {
 public:
  // One source: every window of all `prefixes`, `length` + 1 tokens each.
  WindowSampler(const std::vector<std::filesystem::path>& prefixes, std::int64_t length, std::uint64_t seed);
  WindowSampler(const std::vector<SamplerSource>& sources, std::int64_t length, std::uint64_t seed);

  std::uint64_t windows_per_epoch() const;  // of all sources together
  // The next `batch` windows: int64 [batch, length + 1].
  torch::Tensor next(std::int64_t batch);
  // Data parallelism: consumes `batch` * `parts` windows (the global batch) and returns part
  // `part` of them, [batch, length + 1]; the parts of all ranks together are next(batch * parts).
  torch::Tensor next_part(std::int64_t batch, std::int64_t part, std::int64_t parts);

  SamplerPosition position() const;
  void set_position(const SamplerPosition& position);

 private:
  struct Location {
    std::uint32_t shard;
    std::uint64_t window;
  };
  struct Source {
    std::vector<TokenShard> shards;
    std::vector<Location> order;  // this epoch's
    SourcePosition position;
    double weight = 1.0;
    std::uint64_t drawn = 0;  // windows drawn in all epochs
  };
  void shuffle_epoch(std::size_t source);
  std::size_t next_source() const;
  void draw(std::int64_t* out, bool copy);

  std::vector<Source> sources_;
  std::int64_t length_;
  std::uint64_t seed_;
  double total_weight_ = 0.0;
};

}  // namespace svmoe
