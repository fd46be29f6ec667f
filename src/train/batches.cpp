#include "svmoe/train/batches.h"

#include <torch/torch.h>

#include <random>

#include "svmoe/util/error.h"

namespace svmoe {

WindowSampler::WindowSampler(const std::vector<std::filesystem::path>& prefixes, std::int64_t length,
                             std::uint64_t seed)
    : length_(length), seed_(seed) {
  for (const auto& prefix : prefixes) shards_.push_back(TokenShard::open(prefix));
  shuffle_epoch();
  if (locations_.empty()) {
    throw FormatError("the training shards hold no window of " + std::to_string(length + 1) + " tokens",
                      "lower train.sequence_length, or prepare more data");
  }
}

void WindowSampler::shuffle_epoch() {
  locations_.clear();
  for (std::uint32_t s = 0; s < shards_.size(); ++s) {
    const auto windows = shards_[s].windows(static_cast<std::uint64_t>(length_));
    for (std::uint64_t w = 0; w < windows; ++w) locations_.push_back({s, w});
  }
  // Fisher-Yates with a fixed generator: the same order on every platform.
  std::mt19937_64 rng(seed_ * 1000003ULL + position_.epoch);
  for (std::size_t i = locations_.size(); i > 1; --i) std::swap(locations_[i - 1], locations_[rng() % i]);
}

torch::Tensor WindowSampler::next(std::int64_t batch) {
  auto out = torch::empty({batch, length_ + 1}, torch::kInt64);
  auto* data = out.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < batch; ++b) {
    if (position_.index >= locations_.size()) {
      ++position_.epoch;
      position_.index = 0;
      shuffle_epoch();
    }
    const Location& where = locations_[position_.index++];
    shards_[where.shard].copy_window(where.window, static_cast<std::uint64_t>(length_), data + b * (length_ + 1));
  }
  return out;
}

void WindowSampler::set_position(const SamplerPosition& position) {
  position_.epoch = position.epoch;
  position_.index = position.index;
  shuffle_epoch();
  if (position_.index > locations_.size()) throw FormatError("the saved data position is beyond the training data");
}

}  // namespace svmoe
