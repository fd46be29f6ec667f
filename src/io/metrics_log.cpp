#include "svmoe/io/metrics_log.h"

#include <fstream>
#include <string>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

void add_scalars(const std::string& tag, const Json& value, int list_depth, std::vector<TensorBoardScalar>& out) {
  if (value.is_number()) {
    out.push_back({tag, value.get<double>()});
  } else if (value.is_object()) {
    for (const auto& [name, inner] : value.items()) add_scalars(tag + "/" + name, inner, list_depth, out);
  } else if (value.is_array()) {
    const std::string level = list_depth == 0 ? "/layer_" : "/expert_";
    for (std::size_t i = 0; i < value.size(); ++i)
      add_scalars(tag + level + std::to_string(i), value[i], list_depth + 1, out);
  }
}

// The wall time of a line written before lines carried "time": the file's last change.
double file_time(const fs::path& path) {
  const auto written = fs::last_write_time(path);
  const auto system = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      written - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
  return std::chrono::duration<double>(system.time_since_epoch()).count();
}

}  // namespace

std::vector<TensorBoardScalar> tensorboard_scalars(const Json& line) {
  std::vector<TensorBoardScalar> scalars;
  for (const auto& [name, value] : line.items()) {
    if (name == "step" || name == "time") continue;
    if (value.is_number()) {
      scalars.push_back(
          {name.rfind("valid_", 0) == 0 ? "valid/" + name.substr(6) : "train/" + name, value.get<double>()});
    } else {
      add_scalars(name, value, 0, scalars);
    }
  }
  return scalars;
}

MetricsLog::MetricsLog(const RunDirectory& run, std::int64_t step, bool tensorboard) : run_(run) {
  // metrics.jsonl: the lines of steps <= `step`, rewritten atomically.
  std::vector<Json> kept;
  if (fs::exists(run.metrics())) {
    std::string text;
    for (Json& line : run.read_metrics()) {
      if (line.value("step", std::int64_t{0}) > step) continue;
      text += line.dump() + "\n";
      kept.push_back(std::move(line));
    }
    write_file_atomically(run.metrics(), text);
  }
  if (!tensorboard) {
    // Event files of an earlier run would disagree with metrics.jsonl from here on.
    for (const fs::path& old : run.tensorboard_event_files()) fs::remove(old);
    return;
  }
  // The event files: the kept lines replayed into a file written under a name TensorBoard
  // ignores, renamed into place; then the files of earlier runs go.
  const double now = unix_time_now();
  const fs::path events = run.root() / tensorboard_event_file_name(now);
  const fs::path partial = run.root() / ".events.partial";
  {
    TensorBoardEventWriter replay = TensorBoardEventWriter::create(partial, now);
    const double fallback = kept.empty() ? now : file_time(run.metrics());
    for (const Json& line : kept) {
      replay.write(line.value("step", std::int64_t{0}), line.value("time", fallback), tensorboard_scalars(line));
    }
  }
  for (const fs::path& old : run.tensorboard_event_files()) fs::remove(old);
  fs::rename(partial, events);
  events_.emplace(TensorBoardEventWriter::append_to(events));
}

void MetricsLog::append(Json line) {
  const double now = unix_time_now();
  line["time"] = now;
  std::ofstream out(run_.metrics(), std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) {
    throw IoError("cannot append to '" + run_.metrics().string() + "'",
                  "check free disk space, then run again to resume");
  }
  if (events_) events_->write(line.value("step", std::int64_t{0}), now, tensorboard_scalars(line));
}

}  // namespace svmoe
