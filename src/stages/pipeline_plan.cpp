// svmoe run's plan: for each step, compare what it would compute now (its hash: settings and
// its inputs' hashes, stages/pipeline.h) with its marker (EXPERIMENT/pipeline/STEP.json, written
// when it starts and when it is done, with a fingerprint of its output) and with the disk, and
// decide: done, run, resume (started, not done), rerun (something it reads changed, an input
// reruns, or its output changed on disk) or not selected. The markers are the only record of
// what svmoe wrote: an output without one is never touched.
#include "svmoe/stages/pipeline_plan.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "svmoe/io/experiment_directory.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/sha256.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

const char* step_action_name(StepAction action) {
  switch (action) {
    case StepAction::kSkip:
      return "done";
    case StepAction::kRun:
      return "run";
    case StepAction::kResume:
      return "resume";
    case StepAction::kRerun:
      return "rerun";
    case StepAction::kNotSelected:
      return "-";
  }
  return "?";
}

namespace {

struct StepMarker {
  std::string state;  // started | done
  std::string hash;
  Json settings;
  Json inputs;   // {need: hash}
  Json outputs;  // output_fingerprint when done (null in markers written before fingerprints)
};

std::optional<StepMarker> read_marker(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    const Json j = Json::parse(read_text_file(path));
    return StepMarker{j.at("state").get<std::string>(), j.at("hash").get<std::string>(), j.at("settings"),
                      j.at("inputs"), j.value("outputs", Json())};
  } catch (const Json::exception& e) {
    throw FormatError("the pipeline marker '" + path.string() + "' is unreadable: " + e.what(),
                      "delete it: the step then runs again (remove its output too, or svmoe run refuses to touch it)");
  }
}

// Logs and lock files are written around a step, not by it (a lock file is emptied when its
// holder lets go; a log may get a line after the output is complete).
bool fingerprinted(const fs::path& file) {
  const std::string extension = file.extension().string();
  return extension != ".lock" && extension != ".log";
}

// Size, and the SHA-256 of files up to kHashedFileLimit (hashing multi-GB weights at every plan
// would cost minutes; a changed weight file of the same size is then not noticed).
Json file_fingerprint(const fs::path& file) {
  const std::uintmax_t size = fs::file_size(file);
  Json entry = {{"size", size}};
  if (size <= kHashedFileLimit) entry["sha256"] = sha256_file_hex(file);
  return entry;
}

}  // namespace

Json output_fingerprint(const fs::path& output) {
  Json files = Json::object();
  if (fs::is_regular_file(output)) {
    files["."] = file_fingerprint(output);
    return files;
  }
  if (!fs::is_directory(output)) return files;
  std::vector<fs::path> paths;
  for (const auto& entry : fs::recursive_directory_iterator(output)) {
    if (entry.is_regular_file() && fingerprinted(entry.path())) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) files[path.lexically_relative(output).generic_string()] = file_fingerprint(path);
  return files;
}

// The first recorded file that is gone or differs, as a reason; "" when all match.
std::string output_difference(const fs::path& output, const Json& fingerprint) {
  if (!fs::exists(output)) return "output missing: " + output.string();
  if (!fingerprint.is_object()) return "";  // a marker from before fingerprints: presence is all it can say
  for (auto it = fingerprint.begin(); it != fingerprint.end(); ++it) {
    const fs::path file = it.key() == "." ? output : output / it.key();
    std::error_code error;
    if (!fs::is_regular_file(file, error)) return "output missing: " + file.string();
    const Json& recorded = it.value();
    const bool same =
        fs::file_size(file, error) == recorded.at("size").get<std::uintmax_t>() &&
        (!recorded.contains("sha256") || sha256_file_hex(file) == recorded.at("sha256").get<std::string>());
    if (!same) return "output changed since it was written: " + file.string();
  }
  return "";
}

// The marker records the settings themselves, not only their hash, so that a later plan can say
// which key changed (change_reason).
void write_step_marker(const fs::path& dir, const PipelineStep& step, const std::vector<const PipelineStep*>& needs,
                       StepState state) {
  Json inputs = Json::object();
  for (const auto* need : needs) inputs[need->name] = need->hash;
  const Json marker = {{"step", step.name},
                       {"stage", enum_name(step.stage)},
                       {"state", state == StepState::kDone ? "done" : "started"},
                       {"hash", step.hash},
                       {"settings", step.settings},
                       {"inputs", inputs},
                       {"output", step.output.string()},
                       {"outputs", state == StepState::kDone ? output_fingerprint(step.output) : Json()},
                       {"updated", utc_timestamp_now()},
                       {"svmoe", SVMOE_VERSION}};
  const ExperimentDirectory experiment(dir);
  fs::create_directories(experiment.pipeline());
  write_file_atomically(experiment.step_marker(step.name), marker.dump(2) + "\n");
}

namespace {

std::string short_value(const Json& value) {
  std::string text = value.is_null() ? "(unset)" : value.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

// Why a step's hash differs from its marker's: the changed keys, else the inputs that changed.
std::string change_reason(const PipelineStep& step, const StepMarker& marker, const std::vector<PipelineStep>& steps) {
  std::vector<std::string> changes;
  for (auto it = step.settings.begin(); it != step.settings.end(); ++it) {
    const Json old = marker.settings.contains(it.key()) ? marker.settings.at(it.key()) : Json();
    if (old != it.value()) changes.push_back(it.key() + ": " + short_value(old) + " -> " + short_value(it.value()));
  }
  for (auto it = marker.settings.begin(); it != marker.settings.end(); ++it) {
    if (!step.settings.contains(it.key())) changes.push_back(it.key() + " removed");
  }
  if (!changes.empty()) {
    const std::size_t shown = std::min<std::size_t>(changes.size(), 3);
    std::vector<std::string> head(changes.begin(), changes.begin() + static_cast<std::ptrdiff_t>(shown));
    return "changed " + join(head, "; ") +
           (changes.size() > shown ? " (+" + std::to_string(changes.size() - shown) + " more)" : "");
  }
  std::vector<std::string> inputs;
  for (const auto& need : step.needs) {
    const auto it = std::find_if(steps.begin(), steps.end(), [&](const PipelineStep& s) { return s.name == need; });
    if (!marker.inputs.contains(need) || marker.inputs.at(need) != it->hash) inputs.push_back(need);
  }
  return inputs.empty() ? "its marker's hash differs" : "input changed: " + join(inputs, ", ");
}

bool selected_by(const std::vector<std::string>& names, const PipelineStep& step) {
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& name) { return name == step.name || name == enum_name(step.stage); });
}

void check_names(const std::vector<std::string>& names, const std::vector<PipelineStep>& steps,
                 const std::string& option) {
  for (const auto& name : names) {
    if (std::none_of(steps.begin(), steps.end(),
                     [&](const PipelineStep& s) { return name == s.name || name == enum_name(s.stage); })) {
      std::vector<std::string> valid;
      for (const auto& s : steps) valid.push_back(s.name);
      throw UsageError(option + " '" + name + "' is not a step of this experiment",
                       "its steps: " + join(valid, ", ") + " (or a stage's name, e.g. finetune, for all its steps)");
    }
  }
}

}  // namespace

std::vector<PlannedStep> plan_pipeline(const std::vector<PipelineStep>& steps, const fs::path& dir,
                                       const PipelineSelection& selection) {
  check_names(selection.only, steps, "--only");
  if (!selection.from.empty()) check_names({selection.from}, steps, "--from");
  std::vector<PlannedStep> plan;
  std::set<std::string> runs;  // steps this plan (re)runs from scratch or resumes
  bool from_reached = false;
  // Steps come in dependency order, so `runs` already holds every input that runs again. The
  // tests below go from the strongest reason to the weakest; the first that holds decides.
  for (const auto& step : steps) {
    PlannedStep planned{&step, StepAction::kSkip, ""};
    const auto marker = read_marker(ExperimentDirectory(dir).step_marker(step.name));
    const bool forced = !selection.from.empty() && (selected_by({selection.from}, step) || from_reached);
    from_reached = from_reached || forced;
    std::string changed_need;
    for (const auto& need : step.needs) {
      if (runs.count(need) != 0) changed_need = need;
    }
    if (!marker) {
      if (fs::exists(step.output)) {
        throw ConfigError("'" + step.output.string() + "' exists, but svmoe run has no record of writing it (no " +
                              ExperimentDirectory(dir).step_marker(step.name).string() + ")",
                          "svmoe run never removes what it did not write: move it away, or choose another run.dir");
      }
      planned.action = StepAction::kRun;
      planned.reason = "not run yet";
    } else if (forced) {
      planned.action = StepAction::kRerun;
      planned.reason = "--from " + selection.from;
    } else if (marker->hash != step.hash) {
      planned.action = StepAction::kRerun;
      planned.reason = change_reason(step, *marker, steps);
    } else if (!changed_need.empty()) {
      planned.action = StepAction::kRerun;
      planned.reason = "input " + changed_need + " runs again";
    } else if (marker->state != "done") {
      planned.action = StepAction::kResume;
      planned.reason = "interrupted";
    } else if (const std::string difference = output_difference(step.output, marker->outputs); !difference.empty()) {
      planned.action = StepAction::kRerun;  // the marker says done, the disk disagrees: the disk wins
      planned.reason = difference;
    }
    planned.from_scratch = planned.action == StepAction::kRerun;
    if (planned.action != StepAction::kSkip) runs.insert(step.name);
    if (!selection.only.empty() && !selected_by(selection.only, step)) {
      if (planned.action != StepAction::kSkip) {
        planned.reason = step_action_name(planned.action) + std::string(" (") + planned.reason + "), not selected";
      }
      planned.action = planned.action == StepAction::kSkip ? StepAction::kSkip : StepAction::kNotSelected;
    }
    plan.push_back(planned);
  }
  // A selected step runs only on the outputs of steps that are done.
  if (!selection.only.empty()) {
    for (const auto& planned : plan) {
      if (planned.action == StepAction::kSkip || planned.action == StepAction::kNotSelected) continue;
      for (const auto& need : planned.step->needs) {
        const auto it =
            std::find_if(plan.begin(), plan.end(), [&](const PlannedStep& p) { return p.step->name == need; });
        if (it->action == StepAction::kNotSelected) {
          throw UsageError(
              "step '" + planned.step->name + "' needs '" + need + "', which is not done (" + it->reason + ")",
              "run it first (svmoe run --only " + need + "), or leave out --only to run both");
        }
      }
    }
  }
  return plan;
}

std::string plan_text(const std::vector<PlannedStep>& plan) {
  std::ostringstream out;
  std::size_t name_width = 4, stage_width = 5;
  for (const auto& p : plan) {
    name_width = std::max(name_width, p.step->name.size());
    stage_width = std::max(stage_width, std::string(enum_name(p.step->stage)).size());
  }
  const auto pad = [](const std::string& text, std::size_t width) {
    return text + std::string(width - text.size(), ' ');
  };
  out << pad("step", name_width) << "  " << pad("stage", stage_width) << "  " << pad("action", 6) << "  output / why\n";
  for (const auto& p : plan) {
    out << pad(p.step->name, name_width) << "  " << pad(enum_name(p.step->stage), stage_width) << "  "
        << pad(step_action_name(p.action), 6) << "  " << p.step->output.string();
    if (!p.reason.empty()) out << "  (" << p.reason << ")";
    out << "\n";
  }
  return out.str();
}

std::string plan_tsv(const std::vector<PlannedStep>& plan) {
  std::ostringstream out;
  for (const auto& p : plan) {
    out << p.step->name << '\t' << enum_name(p.step->stage) << '\t' << step_action_name(p.action) << '\t'
        << p.step->tasks << '\t' << (p.step->needs.empty() ? "-" : join(p.step->needs, ",")) << '\t'
        << p.step->output.string() << '\n';
  }
  return out.str();
}

// A step that reruns starts from nothing: its old output (which svmoe wrote: it has a marker) and
// its marker go, so a resume cannot mix the old run's checkpoints into the new one.
void reset_changed_steps(const std::vector<PlannedStep>& plan, const fs::path& dir) {
  for (const auto& p : plan) {
    if (!p.from_scratch) continue;
    spdlog::warn("run: {} runs again from scratch ({}): removing {}", p.step->name, p.reason, p.step->output.string());
    fs::remove_all(p.step->output);
    fs::remove(ExperimentDirectory(dir).step_marker(p.step->name));
  }
}

}  // namespace svmoe
