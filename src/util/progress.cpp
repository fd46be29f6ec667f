#include "svmoe/util/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace svmoe {

ProgressBar::ProgressBar(std::int64_t total, bool enabled)
    : total_(std::max<std::int64_t>(1, total)), enabled_(enabled) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(std::int64_t done, const std::string& status, double eta_seconds) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // At most five redraws a second (the last one always), so a fast loop does not spend its time
  // on the terminal.
  if (drawn_ && done < total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  winsize size{};
  const int columns = ::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 ? size.ws_col : 100;
  // "done/total [####......] status | ETA 3m05s", the bar shrunk to fit the terminal's width
  // (100 columns when stderr is not a terminal that can say), the line cut below it; \r\033[K
  // redraws over the previous line.
  const std::string counts = std::to_string(done) + "/" + std::to_string(total_);
  const std::string tail = " " + status + (eta_seconds >= 0 ? " | ETA " + format_duration(eta_seconds) : "");
  const int width = std::max(10, std::min(30, columns - static_cast<int>(counts.size() + tail.size()) - 4));
  const int filled = static_cast<int>(width * std::min<std::int64_t>(done, total_) / total_);
  std::string line = counts + " [" + std::string(filled, '#') + std::string(width - filled, '.') + "]" + tail;
  if (static_cast<int>(line.size()) >= columns) line.resize(columns - 1);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (!enabled_ || !drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

// A bar only on an interactive terminal: a Slurm log or a CI log would keep every redraw.
bool terminal_progress_wanted() {
  const char* ci = std::getenv("CI");
  return ::isatty(STDERR_FILENO) == 1 && (ci == nullptr || *ci == '\0');
}

std::string format_duration(double seconds) {
  const auto total = static_cast<long>(seconds + 0.5);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%ldh%02ldm", total / 3600, total % 3600 / 60);
  else if (total >= 60)
    std::snprintf(text, sizeof text, "%ldm%02lds", total / 60, total % 60);
  else
    std::snprintf(text, sizeof text, "%lds", total);
  return text;
}

}  // namespace svmoe
