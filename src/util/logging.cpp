#include "svmoe/util/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "svmoe/util/error.h"

namespace svmoe {

void setup_logging(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only "off" itself may mean off.
  if (parsed == spdlog::level::off && level != "off") {
    throw ConfigError("log level '" + level + "' is not known", "use one of trace, debug, info, warn, error, off");
  }
  spdlog::drop("svmoe");
  auto logger = spdlog::stderr_color_mt("svmoe");
  // A Slurm log file has no colours and needs dates: one plain, complete line per event.
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

void set_log_rank(int rank) {
  auto logger = spdlog::default_logger();
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rank " + std::to_string(rank) + "] [%^%l%$] %v");
  if (rank != 0 && logger->level() < spdlog::level::warn) logger->set_level(spdlog::level::warn);
}

ScopedLogFile::ScopedLogFile(const std::filesystem::path& path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string(), /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  spdlog::default_logger()->sinks().push_back(sink);
  sink_ = sink;
}

ScopedLogFile::~ScopedLogFile() {
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), std::static_pointer_cast<spdlog::sinks::sink>(sink_)),
              sinks.end());
}

}  // namespace svmoe
