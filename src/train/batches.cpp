#include "svmoe/train/batches.h"

#include <torch/torch.h>

#include <random>

#include "svmoe/util/error.h"

namespace svmoe {

WindowSampler::WindowSampler(const std::vector<std::filesystem::path>& prefixes, std::int64_t length,
                             std::uint64_t seed)
    : WindowSampler(std::vector<SamplerSource>{{prefixes, 1.0}}, length, seed) {}

WindowSampler::WindowSampler(const std::vector<SamplerSource>& sources, std::int64_t length, std::uint64_t seed)
    : length_(length), seed_(seed) {
  for (const auto& spec : sources) {
    if (!(spec.weight > 0)) throw ConfigError("a data source's weight must be positive", "fix the mix's weights");
    Source source;
    for (const auto& prefix : spec.prefixes) source.shards.push_back(TokenShard::open(prefix));
    source.weight = spec.weight;
    total_weight_ += spec.weight;
    sources_.push_back(std::move(source));
    shuffle_epoch(sources_.size() - 1);
    if (sources_.back().order.empty()) {
      throw FormatError("the shards " + (spec.prefixes.empty() ? std::string("(none)") : spec.prefixes[0].string()) +
                            (spec.prefixes.size() > 1 ? " ..." : "") + " hold no window of " +
                            std::to_string(length + 1) + " tokens",
                        "lower train.sequence_length, or prepare more data");
    }
  }
  if (sources_.empty()) throw ConfigError("no training data was given");
}

std::uint64_t WindowSampler::windows_per_epoch() const {
  std::uint64_t total = 0;
  for (const auto& s : sources_) total += s.order.size();
  return total;
}

// A source's epoch is every window of `length + 1` tokens (inputs plus the shifted targets) of
// every shard, in a shuffled order that depends only on (seed, epoch, source): a resumed run
// rebuilds the same order from its saved position instead of storing it.
void WindowSampler::shuffle_epoch(std::size_t index) {
  Source& source = sources_[index];
  source.order.clear();
  for (std::uint32_t s = 0; s < source.shards.size(); ++s) {
    const auto windows = source.shards[s].windows(static_cast<std::uint64_t>(length_));
    for (std::uint64_t w = 0; w < windows; ++w) source.order.push_back({s, w});
  }
  // Fisher-Yates with a fixed generator: the same order on every platform.
  std::mt19937_64 rng(seed_ * 1000003ULL + source.position.epoch + 7919ULL * index);
  for (std::size_t i = source.order.size(); i > 1; --i) std::swap(source.order[i - 1], source.order[rng() % i]);
}

std::size_t WindowSampler::next_source() const {
  if (sources_.size() == 1) return 0;
  std::uint64_t drawn = 0;
  for (const auto& s : sources_) drawn += s.drawn;
  // Megatron-LM's blending rule: the source furthest behind its share after this draw.
  std::size_t best = 0;
  double best_lag = -1e300;
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    const double lag =
        sources_[i].weight / total_weight_ * static_cast<double>(drawn + 1) - static_cast<double>(sources_[i].drawn);
    if (lag > best_lag) {
      best_lag = lag;
      best = i;
    }
  }
  return best;
}

// One window from the source next_source picks; a source that runs out starts its next epoch on
// its own (the others go on where they are).
void WindowSampler::draw(std::int64_t* out, bool copy) {
  const std::size_t index = next_source();
  Source& source = sources_[index];
  if (source.position.index >= source.order.size()) {
    ++source.position.epoch;
    source.position.index = 0;
    shuffle_epoch(index);
  }
  const Location& where = source.order[source.position.index++];
  ++source.drawn;
  if (copy) source.shards[where.shard].copy_window(where.window, static_cast<std::uint64_t>(length_), out);
}

torch::Tensor WindowSampler::next(std::int64_t batch) { return next_part(batch, 0, 1); }

// Data parallelism: every rank draws the whole global batch of `batch * parts` windows, in the same
// order, and copies only its own `part`; so the ranks never disagree on the sampler's state, and a
// run resumed on another number of ranks with the same global batch sees the same windows.
torch::Tensor WindowSampler::next_part(std::int64_t batch, std::int64_t part, std::int64_t parts) {
  auto out = torch::empty({batch, length_ + 1}, torch::kInt64);
  auto* data = out.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < batch * parts; ++i) {
    const bool mine = i / batch == part;
    draw(mine ? data + (i % batch) * (length_ + 1) : nullptr, mine);
  }
  return out;
}

SamplerPosition WindowSampler::position() const {
  SamplerPosition position;
  for (const auto& s : sources_) position.push_back(s.position);
  return position;
}

// A checkpoint stores each source's (epoch, index); the shuffled order is recomputed from it, and
// the draw counts the blending rule needs follow from it.
void WindowSampler::set_position(const SamplerPosition& position) {
  if (!position.empty() && position.size() != sources_.size()) {
    throw FormatError("the saved data position has " + std::to_string(position.size()) + " sources, this run " +
                          std::to_string(sources_.size()),
                      "resume with the same data mix, or start a new run directory");
  }
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    Source& source = sources_[i];
    source.position = position.empty() ? SourcePosition{} : position[i];
    shuffle_epoch(i);
    if (source.position.index > source.order.size()) {
      throw FormatError("the saved data position is beyond the training data",
                        "resume with the same dataset, or start a new run directory");
    }
    source.drawn = source.position.epoch * source.order.size() + source.position.index;
  }
}

}  // namespace svmoe
