// A training run's metrics (docs/training.md, "Metrics and TensorBoard"): RUN/metrics.jsonl, one
// JSON object a logging or validation step, the record that report, `svmoe status` and a resume
// read; and, where wanted, its mirror as TensorBoard scalars in RUN/events.out.tfevents.*
// (io/tensorboard_events.h), so that `tensorboard --logdir EXPERIMENT_DIR` shows every run live.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/io/run_directory.h"
#include "svmoe/io/tensorboard_events.h"

namespace svmoe {

class MetricsLog {
 public:
  // Opens RUN's metrics for a run that goes on after `step` (0: from the start): the lines of
  // later steps, which the run will redo, are dropped (so are lines a crash cut short); with
  // `tensorboard` the event files are written anew from the lines kept, so TensorBoard shows
  // each step once across resumes.
  MetricsLog(const RunDirectory& run, std::int64_t step, bool tensorboard);

  // Appends LINE (it has "step") stamped with "time" (seconds since the Unix epoch); a line that
  // cannot be written is an IoError (a full disk): a record with silent holes would outlive the
  // resume, which redoes only the steps after its checkpoint.
  void append(nlohmann::json line);

 private:
  RunDirectory run_;
  std::optional<TensorBoardEventWriter> events_;
};

// The scalars TensorBoard shows for one metrics line. Numbers at the top are "train/NAME", or
// "valid/NAME" for "valid_NAME"; an object's numbers are "OBJECT/NAME"; a list is one value per
// layer ("/layer_L"), a list of lists one per layer and expert ("/layer_L/expert_E"). "step" and
// "time" are the event's own; null (an unbounded ratio), strings and booleans are left out.
std::vector<TensorBoardScalar> tensorboard_scalars(const nlohmann::json& line);

}  // namespace svmoe
