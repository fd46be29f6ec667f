// A one-line progress bar for terminals: step, a bar, the numbers that matter and the ETA,
// redrawn in place at most a few times a second. Not on a terminal (a Slurm log file, CI) it
// draws nothing: the plain log lines the caller writes every few steps are the progress there.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace svmoe {

class ProgressBar {
 public:
  // `enabled`: draw at all (see terminal_progress_wanted()).
  ProgressBar(std::int64_t total, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` of `total`; `status` e.g. "loss 3.21 | 4100 tok/s"; `eta_seconds` < 0: unknown.
  void update(std::int64_t done, const std::string& status, double eta_seconds);
  void clear();  // erases the bar, before anything else is written to the terminal

 private:
  std::int64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

// True when stderr is a terminal and CI is not set.
bool terminal_progress_wanted();

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

}  // namespace svmoe
