// A training run's directory, the one owner of its layout: train/trainer.cpp writes it; the
// pipeline, train-experts, report and `svmoe status` read it (docs/training.md, "Checkpoints,
// resume, signals").
//   RUN/checkpoint-STEP/             a Hugging Face directory, the optimizer state
//                                    (optimizer.safetensors, or with ZeRO-1 one
//                                    optimizer.shard-R-of-S.safetensors per rank) and
//                                    trainer_state.json, written last: a checkpoint without it
//                                    is incomplete and ignored
//   RUN/metrics.jsonl                one JSON object a logging or validation step ({"step": ...})
//   RUN/events.out.tfevents.*        the same metrics as TensorBoard scalars (io/metrics_log.h)
//   RUN/final/                       the trained model, a Hugging Face directory
//   RUN/train.log                    the run's log, appended to across resumes
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace svmoe {

class RunDirectory {
 public:
  explicit RunDirectory(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path checkpoint(std::int64_t step) const;
  std::filesystem::path final_model() const { return root_ / "final"; }
  std::filesystem::path metrics() const { return root_ / "metrics.jsonl"; }
  std::filesystem::path log() const { return root_ / "train.log"; }
  static std::filesystem::path trainer_state(const std::filesystem::path& checkpoint) {
    return checkpoint / "trainer_state.json";
  }
  // The optimizer's state in a checkpoint: whole (shards == 0), or shard `rank` of `shards`.
  static std::filesystem::path optimizer_state(const std::filesystem::path& checkpoint, int rank = 0, int shards = 0);

  // The TensorBoard event files, by name.
  std::vector<std::filesystem::path> tensorboard_event_files() const;
  // Every checkpoint-STEP directory, complete or not, by step.
  std::vector<std::pair<std::int64_t, std::filesystem::path>> checkpoints() const;
  // The newest complete checkpoint, if any.
  std::optional<std::filesystem::path> latest_complete_checkpoint() const;
  // metrics.jsonl's objects in order (empty where there is no file); a line a crash cut short is
  // left out.
  std::vector<nlohmann::json> read_metrics() const;

 private:
  std::filesystem::path root_;
};

// The step of a checkpoint-STEP directory; -1 for any other name.
std::int64_t checkpoint_step(const std::filesystem::path& checkpoint);

}  // namespace svmoe
