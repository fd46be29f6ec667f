#include "svmoe/io/run_directory.h"

#include <algorithm>
#include <fstream>
#include <regex>

#include "svmoe/io/tensorboard_events.h"

namespace svmoe {
namespace fs = std::filesystem;

fs::path RunDirectory::optimizer_state(const fs::path& checkpoint, int rank, int shards) {
  if (shards == 0) return checkpoint / "optimizer.safetensors";
  return checkpoint / ("optimizer.shard-" + std::to_string(rank) + "-of-" + std::to_string(shards) + ".safetensors");
}

// -1 for a name that is not checkpoint-N (final/, checkpoint-N.partial being written).
std::int64_t checkpoint_step(const fs::path& checkpoint) {
  static const std::regex pattern(R"(checkpoint-(\d+))");
  std::smatch match;
  const std::string name = checkpoint.filename().string();
  return std::regex_match(name, match, pattern) ? std::stoll(match[1].str()) : -1;
}

fs::path RunDirectory::checkpoint(std::int64_t step) const { return root_ / ("checkpoint-" + std::to_string(step)); }

std::vector<fs::path> RunDirectory::tensorboard_event_files() const {
  std::vector<fs::path> found;
  if (!fs::is_directory(root_)) return found;
  for (const auto& entry : fs::directory_iterator(root_)) {
    if (entry.is_regular_file() && is_tensorboard_event_file(entry.path())) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<std::pair<std::int64_t, fs::path>> RunDirectory::checkpoints() const {
  std::vector<std::pair<std::int64_t, fs::path>> found;
  if (!fs::is_directory(root_)) return found;
  for (const auto& entry : fs::directory_iterator(root_)) {
    const std::int64_t step = checkpoint_step(entry.path());
    if (step >= 0 && entry.is_directory()) found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// trainer_state.json is written last into a checkpoint, so a checkpoint without it was cut off
// (a kill during the save) and the one before it is where training resumes.
std::optional<fs::path> RunDirectory::latest_complete_checkpoint() const {
  const auto all = checkpoints();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (fs::exists(trainer_state(it->second))) return it->second;
  }
  return std::nullopt;
}

// Every complete line of metrics.jsonl; a crash can leave the last one cut, which is skipped
// (the trainer truncates it on resume, io/metrics_log.h).
std::vector<nlohmann::json> RunDirectory::read_metrics() const {
  std::vector<nlohmann::json> lines;
  std::ifstream in(metrics());
  for (std::string line; std::getline(in, line);) {
    try {
      lines.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::parse_error&) {
      // a line cut by a crash
    }
  }
  return lines;
}

}  // namespace svmoe
