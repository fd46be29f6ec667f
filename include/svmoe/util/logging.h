// Logging setup: spdlog's default logger, with timestamps, to stderr and optionally a file.
#pragma once

#include <filesystem>
#include <string>

namespace svmoe {

// "trace", "debug", "info", "warn", "error", "off"; throws ConfigError for any other.
void setup_logging(const std::string& level);

// Also write everything logged from now on to `path` (the run directory's copy).
void add_log_file(const std::filesystem::path& path);

}  // namespace svmoe
