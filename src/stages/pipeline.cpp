#include "svmoe/stages/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <set>
#include <sstream>

#include "svmoe/stages/evaluate.h"
#include "svmoe/stages/finetune.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/stages/report.h"
#include "svmoe/stages/train_experts.h"
#include "svmoe/stages/train_router.h"
#include "svmoe/train/distributed.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/progress.h"
#include "svmoe/util/sha256.h"
#include "svmoe/util/signals.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLayoutOrigin = "svmoe run (the run.dir layout)";

// Where each step writes inside the experiment directory (docs/pipeline.md).
struct Layout {
  fs::path dir;
  // The dense model the experts and Dense start from: the pretrained base, or the given one.
  static fs::path base_model(const RunSettings& run) {
    return run.pretrain_base ? Layout{run.dir}.base() / "final" : run.base_model;
  }
  fs::path dataset() const { return dir / "dataset"; }
  fs::path base() const { return dir / "base"; }
  fs::path experts() const { return dir / "experts"; }
  fs::path moe() const { return dir / "moe"; }
  fs::path router() const { return dir / "router"; }
  fs::path model(const std::string& name) const { return dir / "models" / name; }
  fs::path eval() const { return dir / "eval"; }
};

// How the paper's tables name each stage-4 model: name, LB column, report label.
struct ModelRole {
  std::string table_name, lb, label;
  bool load_balanced;
};
ModelRole model_role(const std::string& model) {
  if (model == "dense") return {"Dense", "-", "Dense", false};
  if (model == "btx") return {"BTX", "no", "BTX", false};
  if (model == "btx_lb") return {"BTX", "yes", "BTX +LB", true};
  if (model == "svmoe") return {"SvMoE", "no", "SvMoE", false};
  return {"SvMoE", "yes", "SvMoE +LB", true};
}

// The leaves under `key` as {"a.b.c": value}, leaving out the keys in `except` (and what is under them).
void flatten_settings(const Json& value, const std::string& key, const std::set<std::string>& except, Json& out) {
  if (except.count(key) != 0) return;
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it)
      flatten_settings(it.value(), key + "." + it.key(), except, out);
    return;
  }
  out[key] = value;
}

Json step_settings(const ConfigTree& config, const std::vector<std::string>& keys,
                   const std::set<std::string>& except) {
  Json out = Json::object();
  for (const auto& key : keys) flatten_settings(config.at(key), key, except, out);
  return out;
}

// The training keys a step's result depends on, resolved as the step reads them (not when it
// logs or saves checkpoints, nor how memory is saved (ZeRO-1, activation checkpointing): none
// changes a number).
void add_train_settings(Json& settings, const ConfigTree& config, const std::string& section) {
  const Json train = resolved_train_section(config, section);
  for (auto it = train.begin(); it != train.end(); ++it) {
    if (it.key() == "log_every" || it.key() == "save_every" || it.key() == "keep_last" || it.key() == "zero_stage" ||
        it.key() == "activation_checkpointing") {
      continue;
    }
    settings["train." + it.key()] = it.value();
  }
}

std::string step_hash(const PipelineStep& step, const std::vector<PipelineStep>& earlier) {
  std::string text = step.name + "\n" + step.stage + "\n" + step.settings.dump() + "\n";
  for (const auto& need : step.needs) {
    const auto it = std::find_if(earlier.begin(), earlier.end(), [&](const PipelineStep& s) { return s.name == need; });
    text += need + "=" + it->hash + "\n";
  }
  return sha256_hex(text);
}

PipelineStep new_step(std::string name, std::string stage, std::string train_section, std::vector<std::string> needs,
                      fs::path output, const ConfigTree& config) {
  return {std::move(name),
          std::move(stage),
          std::move(train_section),
          std::move(needs),
          std::move(output),
          config,
          Json::object(),
          {},
          1,
          false};
}

// The experiment config with every stage's input and output paths set to the layout.
ConfigTree layout_config(const ConfigTree& experiment, const RunSettings& run, std::int64_t num_experts) {
  const Layout layout{run.dir};
  ConfigTree config = experiment;
  const auto set = [&](const std::string& key, Json value) { config.set(key, std::move(value), kLayoutOrigin); };
  const fs::path base_model = Layout::base_model(run);
  set("prepare.output", layout.dataset().string());
  const bool tokenizer_given = !config.at("prepare.tokenizer").is_null() && config.at("prepare.tokenizer") != "";
  if (!tokenizer_given && !config.at("prepare.tokenizer_train.enabled").get<bool>()) {
    set("prepare.tokenizer", run.base_model.string());  // the base model's own tokenizer, as the paper uses
  }
  set("train_experts.base_model", base_model.string());
  set("train_experts.dataset", layout.dataset().string());
  set("train_experts.output", layout.experts().string());
  set("train_experts.experts", Json::array());
  Json experts = Json::array();
  for (std::int64_t n = 0; n < num_experts; ++n) experts.push_back(expert_directory(layout.experts(), n).string());
  set("merge.experts", experts);
  set("merge.output", layout.moe().string());
  set("train_router.model", layout.moe().string());
  set("train_router.dataset", layout.dataset().string());
  set("train_router.output", layout.router().string());
  set("finetune.dataset", layout.dataset().string());
  Json models = Json::array(), runs = Json::array();
  for (const auto& model : run.models) {
    const ModelRole role = model_role(model);
    models.push_back({{"name", role.table_name}, {"path", (layout.model(model) / "final").string()}, {"lb", role.lb}});
    runs.push_back({{"name", role.label}, {"path", layout.model(model).string()}});
  }
  set("eval.models", models);
  set("eval.dataset", layout.dataset().string());
  set("eval.output", layout.eval().string());
  set("eval.btm.experts", run.btm_ensemble ? experts : Json::array());
  set("report.runs", runs);
  set("report.output", (layout.eval() / "report.html").string());
  return config;
}

// Reads a base model's config.json for the base step's settings (its architecture is what the
// step trains), with an error that says what is missing.
Json base_model_config(const fs::path& base_model) {
  const fs::path file = base_model / "config.json";
  if (!fs::exists(file)) {
    throw ConfigError(
        "config key 'run.base_model' is '" + base_model.string() + "', which holds no config.json",
        "give a Hugging Face model directory (with run.pretrain_base.enabled, one with only config.json)");
  }
  try {
    return Json::parse(read_text_file(file));
  } catch (const Json::parse_error& e) {
    throw FormatError("'" + file.string() + "' is not valid JSON: " + e.what(), "fix or replace the file");
  }
}

}  // namespace

std::vector<PipelineStep> pipeline_steps(const ConfigTree& experiment) {
  const RunSettings run = parse_run_settings(experiment);
  const Layout layout{run.dir};
  const std::int64_t num_experts = SettingReader(experiment).integer("prepare.num_subdomains", 2, 1 << 16);
  const ConfigTree config = layout_config(experiment, run, num_experts);
  // Every step's settings are checked now, so that a bad key stops the run before hours of work.
  parse_runtime_settings(config);
  // Keys left out of the steps' settings: the paths svmoe run sets (an input's identity is its
  // hash), the stages' own `train` sections (added resolved), and keys that change no result.
  const std::set<std::string> unhashed_keys = {
      "prepare.output",          "prepare.threads",      "prepare.buffer_mb",     "train_experts.base_model",
      "train_experts.dataset",   "train_experts.output", "train_experts.experts", "train_experts.train",
      "merge.experts",           "merge.output",         "merge.max_shard_mb",    "train_router.model",
      "train_router.dataset",    "train_router.output",  "train_router.train",    "finetune.model",
      "finetune.dataset",        "finetune.output",      "finetune.train",        "finetune.init",
      "finetune.load_balancing", "eval.models",          "eval.dataset",          "eval.output",
      "eval.btm.experts",        "report.runs",          "report.output"};

  std::vector<PipelineStep> steps;
  const auto add = [&](PipelineStep step) {
    step.hash = step_hash(step, steps);
    steps.push_back(std::move(step));
  };
  const Json seed = config.at("runtime.seed");

  PipelineStep prepare = new_step("prepare", "prepare", "", {}, layout.dataset(), config);
  parse_prepare_settings(config);
  prepare.settings = step_settings(config, {"prepare"}, unhashed_keys);
  prepare.settings["runtime.seed"] = seed;
  add(std::move(prepare));

  std::vector<std::string> base_needs;  // what a step that trains the base model's weights needs
  if (run.pretrain_base) {
    ConfigTree base_config = config;
    base_config.set("finetune.model", run.base_model.string(), kLayoutOrigin);
    base_config.set("finetune.init", "random", kLayoutOrigin);
    base_config.set("finetune.subdomains", Json::array(), kLayoutOrigin);
    base_config.set("finetune.subdomain_weights", Json::array(), kLayoutOrigin);
    base_config.set("finetune.load_balancing.method", "none", kLayoutOrigin);
    base_config.set("finetune.output", layout.base().string(), kLayoutOrigin);
    PipelineStep base = new_step("base", "finetune", "run.pretrain_base", {"prepare"}, layout.base(), base_config);
    parse_train_settings(base_config, base.train_section);
    base.settings["run.base_model"] = run.base_model.string();
    base.settings["run.base_model/config.json"] = base_model_config(run.base_model);
    add_train_settings(base.settings, base_config, base.train_section);
    base.settings["runtime.seed"] = seed;
    add(std::move(base));
    base_needs.push_back("base");
  }
  // A given base model is an input of the experts and of Dense: named by its path and config.
  const Json given_base = run.pretrain_base ? Json() : base_model_config(run.base_model);
  const auto base_identity = [&](Json& settings) {
    if (run.pretrain_base) return;
    settings["run.base_model"] = run.base_model.string();
    settings["run.base_model/config.json"] = given_base;
  };

  PipelineStep experts = new_step("experts", "train-experts", "train_experts", {"prepare"}, layout.experts(), config);
  experts.needs.insert(experts.needs.end(), base_needs.begin(), base_needs.end());
  experts.tasks = num_experts;
  parse_train_experts_settings(config);
  parse_train_settings(config, experts.train_section);
  experts.settings = step_settings(config, {"train_experts"}, unhashed_keys);
  add_train_settings(experts.settings, config, experts.train_section);
  base_identity(experts.settings);
  experts.settings["runtime.seed"] = seed;
  add(std::move(experts));

  PipelineStep merge = new_step("merge", "merge", "", {"experts"}, layout.moe(), config);
  parse_merge_settings(config);
  merge.settings = step_settings(config, {"merge"}, unhashed_keys);
  merge.settings["runtime.seed"] = seed;
  add(std::move(merge));

  const bool any_svmoe =
      std::any_of(run.models.begin(), run.models.end(), [](const std::string& m) { return starts_with(m, "svmoe"); });
  if (any_svmoe) {
    PipelineStep router =
        new_step("router", "train-router", "train_router", {"merge", "prepare"}, layout.router(), config);
    router.trains_moe = true;
    parse_train_router_settings(config);
    parse_train_settings(config, router.train_section);
    router.settings = step_settings(config, {"train_router"}, unhashed_keys);
    add_train_settings(router.settings, config, router.train_section);
    router.settings["runtime.seed"] = seed;
    add(std::move(router));
  }

  std::vector<std::string> model_steps;
  for (const auto& model : run.models) {
    const ModelRole role = model_role(model);
    ConfigTree model_config = config;
    const bool dense = model == "dense";
    const fs::path from =
        dense ? Layout::base_model(run) : (starts_with(model, "svmoe") ? layout.router() / "final" : layout.moe());
    model_config.set("finetune.model", from.string(), kLayoutOrigin);
    model_config.set("finetune.init", "pretrained", kLayoutOrigin);
    model_config.set("finetune.output", layout.model(model).string(), kLayoutOrigin);
    model_config.set("finetune.load_balancing.method", role.load_balanced ? run.lb_method : "none", kLayoutOrigin);
    std::vector<std::string> needs = {"prepare"};
    if (dense) {
      needs.insert(needs.end(), base_needs.begin(), base_needs.end());
    } else {
      needs.push_back(starts_with(model, "svmoe") ? "router" : "merge");
    }
    PipelineStep step = new_step(model, "finetune", "finetune", needs, layout.model(model), model_config);
    step.trains_moe = !dense;
    parse_finetune_settings(model_config);
    parse_train_settings(model_config, step.train_section);
    step.settings = step_settings(model_config, {"finetune"}, unhashed_keys);
    step.settings["finetune.load_balancing.method"] = model_config.at("finetune.load_balancing.method");
    if (role.load_balanced) {
      for (const char* key : {"alpha", "pooling", "aux_free_rate"}) {
        const std::string path = std::string("finetune.load_balancing.") + key;
        step.settings[path] = model_config.at(path);
      }
    }
    add_train_settings(step.settings, model_config, step.train_section);
    if (dense) base_identity(step.settings);
    step.settings["runtime.seed"] = seed;
    add(std::move(step));
    model_steps.push_back(model);
  }

  if (!run.models.empty()) {
    PipelineStep eval = new_step("eval", "eval", "", model_steps, layout.eval(), config);
    eval.needs.push_back("prepare");
    if (run.btm_ensemble) eval.needs.push_back("experts");
    parse_eval_settings(config);
    eval.settings = step_settings(config, {"eval"}, unhashed_keys);
    eval.settings["run.models"] = run.models;
    eval.settings["run.btm_ensemble"] = run.btm_ensemble;
    add(std::move(eval));

    // The report lives in eval/ (report.html) and reads the runs' metrics and the eval's numbers.
    PipelineStep report = new_step("report", "report", "", {"eval"}, layout.eval() / "report.html", config);
    report.needs.insert(report.needs.end(), model_steps.begin(), model_steps.end());
    parse_report_settings(config);
    report.settings = step_settings(config, {"report"}, unhashed_keys);
    add(std::move(report));
  }
  return steps;
}

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

fs::path step_marker_path(const fs::path& dir, const std::string& step) { return dir / "pipeline" / (step + ".json"); }

namespace {

struct StepMarker {
  std::string state;  // started | done
  std::string hash;
  Json settings;
  Json inputs;  // {need: hash}
};

std::optional<StepMarker> read_marker(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    const Json j = Json::parse(read_text_file(path));
    return StepMarker{j.at("state").get<std::string>(), j.at("hash").get<std::string>(), j.at("settings"),
                      j.at("inputs")};
  } catch (const Json::exception& e) {
    throw FormatError("the pipeline marker '" + path.string() + "' is unreadable: " + e.what(),
                      "delete it: the step then runs again (remove its output too, or svmoe run refuses to touch it)");
  }
}

std::string now_text() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

void write_marker(const fs::path& dir, const PipelineStep& step, const std::vector<const PipelineStep*>& needs,
                  const std::string& state) {
  Json inputs = Json::object();
  for (const auto* need : needs) inputs[need->name] = need->hash;
  const Json marker = {{"step", step.name},
                       {"stage", step.stage},
                       {"state", state},
                       {"hash", step.hash},
                       {"settings", step.settings},
                       {"inputs", inputs},
                       {"output", step.output.string()},
                       {"updated", now_text()},
                       {"svmoe", SVMOE_VERSION}};
  fs::create_directories(dir / "pipeline");
  write_file_atomically(step_marker_path(dir, step.name), marker.dump(2) + "\n");
}

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
                     [&](const std::string& name) { return name == step.name || name == step.stage; });
}

void check_names(const std::vector<std::string>& names, const std::vector<PipelineStep>& steps,
                 const std::string& option) {
  for (const auto& name : names) {
    if (std::none_of(steps.begin(), steps.end(),
                     [&](const PipelineStep& s) { return name == s.name || name == s.stage; })) {
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
  for (const auto& step : steps) {
    PlannedStep planned{&step, StepAction::kSkip, ""};
    const auto marker = read_marker(step_marker_path(dir, step.name));
    const bool forced = !selection.from.empty() && (selected_by({selection.from}, step) || from_reached);
    from_reached = from_reached || forced;
    std::string changed_need;
    for (const auto& need : step.needs) {
      if (runs.count(need) != 0) changed_need = need;
    }
    if (!marker) {
      if (fs::exists(step.output)) {
        throw ConfigError("'" + step.output.string() + "' exists, but svmoe run has no record of writing it (no " +
                              step_marker_path(dir, step.name).string() + ")",
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
    stage_width = std::max(stage_width, p.step->stage.size());
  }
  const auto pad = [](const std::string& text, std::size_t width) {
    return text + std::string(width - text.size(), ' ');
  };
  out << pad("step", name_width) << "  " << pad("stage", stage_width) << "  " << pad("action", 6) << "  output / why\n";
  for (const auto& p : plan) {
    out << pad(p.step->name, name_width) << "  " << pad(p.step->stage, stage_width) << "  "
        << pad(step_action_name(p.action), 6) << "  " << p.step->output.string();
    if (!p.reason.empty()) out << "  (" << p.reason << ")";
    out << "\n";
  }
  return out.str();
}

std::string plan_tsv(const std::vector<PlannedStep>& plan) {
  std::ostringstream out;
  for (const auto& p : plan) {
    out << p.step->name << '\t' << p.step->stage << '\t' << step_action_name(p.action) << '\t' << p.step->tasks << '\t'
        << (p.step->needs.empty() ? "-" : join(p.step->needs, ",")) << '\t' << p.step->output.string() << '\n';
  }
  return out.str();
}

void reset_changed_steps(const std::vector<PlannedStep>& plan, const fs::path& dir) {
  for (const auto& p : plan) {
    if (!p.from_scratch) continue;
    spdlog::warn("run: {} runs again from scratch ({}): removing {}", p.step->name, p.reason, p.step->output.string());
    fs::remove_all(p.step->output);
    fs::remove(step_marker_path(dir, p.step->name));
  }
}

namespace {

// The step's work, as its subcommand does it.
bool execute_step(const PipelineStep& step, const RuntimeSettings& runtime, const PipelineOptions& options,
                  std::optional<TrainingContext>& training) {
  const ConfigTree& config = step.config;
  if (step.is_training() && !training) training = start_training(runtime);
  if (step.stage == "prepare") {
    Json recorded = config.root();
    recorded.erase("forward");
    const PrepareResult result = run_prepare(parse_prepare_settings(config), runtime, recorded);
    spdlog::info("Table 1: tokens per subdomain and split\n{}", result.table1_markdown);
    spdlog::info("Table 4: categories of each subdomain\n{}", result.table4_markdown);
    return true;
  }
  if (step.stage == "finetune") {
    return !run_finetune(parse_finetune_settings(config), parse_train_settings(config, step.train_section), runtime,
                         *training)
                .interrupted;
  }
  if (step.stage == "train-experts") {
    TrainExpertsSettings settings = parse_train_experts_settings(config);
    if (options.expert >= 0) settings.experts = {options.expert};
    return !run_train_experts(settings, parse_train_settings(config, step.train_section), runtime, *training)
                .interrupted;
  }
  if (step.stage == "merge") {
    run_merge(parse_merge_settings(config), runtime);
    return true;
  }
  if (step.stage == "train-router") {
    return !run_train_router(parse_train_router_settings(config), parse_train_settings(config, step.train_section),
                             runtime, *training)
                .interrupted;
  }
  if (step.stage == "eval") {
    run_eval(parse_eval_settings(config), runtime);
    return true;
  }
  run_report(parse_report_settings(config), parse_eval_settings(config), runtime);
  return true;
}

// An experts step run as one array task is done when every expert is.
bool all_experts_written(const PipelineStep& step) {
  for (std::int64_t n = 0; n < step.tasks; ++n) {
    if (!fs::exists(expert_directory(step.output, n) / "config.json")) return false;
  }
  return true;
}

}  // namespace

PipelineResult run_pipeline(const std::vector<PlannedStep>& plan, const fs::path& dir, const RuntimeSettings& runtime,
                            const PipelineOptions& options) {
  const DistributedEnvironment environment = detect_distributed_environment();
  const bool several_processes = environment.world_size > 1 || options.expert >= 0;
  std::vector<const PlannedStep*> work;
  for (const auto& p : plan) {
    if (p.action == StepAction::kSkip || p.action == StepAction::kNotSelected) continue;
    work.push_back(&p);
    if (several_processes && p.from_scratch) {
      throw UsageError("step '" + p.step->name + "' must run again from scratch (" + p.reason +
                           "), which one of several processes cannot do safely",
                       "run `svmoe run -c CONFIG --reset-changed` once first (scripts/slurm/pipeline.sh does)");
    }
    if (environment.world_size > 1 && !p.step->is_training()) {
      throw UsageError("step '" + p.step->name + "' (" + p.step->stage + ") runs as one process, not " +
                           std::to_string(environment.world_size),
                       "launch only training steps on several processes: svmoe run --only STEP");
    }
  }
  PipelineResult result;
  if (work.empty()) {
    spdlog::info("run: every step is done; nothing to run");
    return result;  // e.g. a requeued array task after the last expert finished
  }
  if (options.expert >= 0 && (work.size() != 1 || work[0]->step->stage != "train-experts")) {
    throw UsageError("--expert " + std::to_string(options.expert) + " is for the experts step alone",
                     "give --only experts with it");
  }
  if (options.expert >= 0 && options.expert >= work[0]->step->tasks) {
    throw UsageError("--expert " + std::to_string(options.expert) + " is out of range",
                     "this experiment has experts 0 to " + std::to_string(work[0]->step->tasks - 1));
  }
  const bool writer = environment.rank == 0;
  if (writer) reset_changed_steps(plan, dir);

  std::optional<TrainingContext> training;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < work.size(); ++i) {
    const PipelineStep& step = *work[i]->step;
    std::vector<const PipelineStep*> needs;
    for (const auto& need : step.needs) {
      for (const auto& p : plan) {
        if (p.step->name == need) needs.push_back(p.step);
      }
    }
    spdlog::info("run: step {}/{}: {} ({}, {}: {}) -> {}", i + 1, work.size(), step.name, step.stage,
                 step_action_name(work[i]->action), work[i]->reason, step.output.string());
    if (writer) {
      // Only training steps resume; the others start over (their outputs appear atomically).
      if (work[i]->action == StepAction::kResume && !step.is_training()) fs::remove_all(step.output);
      write_marker(dir, step, needs, "started");
    }
    const auto step_start = std::chrono::steady_clock::now();
    if (!execute_step(step, runtime, options, training)) {
      spdlog::warn("run: stopped during {} after a checkpoint; run the same command again to resume", step.name);
      result.interrupted = true;
      return result;
    }
    const bool done = options.expert < 0 || all_experts_written(step);
    if (writer && done) write_marker(dir, step, needs, "done");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    spdlog::info("run: {} {} in {}", step.name, done ? "done" : "(this task's expert) done", format_duration(seconds));
    result.ran.push_back(step.name);
    if (stop_requested() && i + 1 < work.size()) {
      spdlog::warn("run: stopped after {}; run the same command again to go on", step.name);
      result.interrupted = true;
      return result;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("run: {} step(s) in {}", result.ran.size(), format_duration(seconds));
  return result;
}

}  // namespace svmoe
