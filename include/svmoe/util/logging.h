// Logging setup: spdlog's default logger, with timestamps, to stderr and optionally a file.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace svmoe {

// "trace", "debug", "info", "warn", "error", "off"; throws ConfigError for any other.
void setup_logging(const std::string& level);

// Data parallel runs: every line gets a "[rank N]" prefix, and ranks other than 0 log only
// warnings and errors (rank 0 reports for all).
void set_log_rank(int rank);

// While it lives, everything logged is also appended to `path` (a run directory's copy of the log).
class ScopedLogFile {
 public:
  explicit ScopedLogFile(const std::filesystem::path& path);
  ~ScopedLogFile();
  ScopedLogFile(const ScopedLogFile&) = delete;
  ScopedLogFile& operator=(const ScopedLogFile&) = delete;

 private:
  std::shared_ptr<void> sink_;
};

}  // namespace svmoe
