// What every config-reading subcommand shares: -c/--set/--print-config, resolving the tree,
// dedicated flags as config keys, and config-reference (docs/config.md).
#include <iostream>
#include <map>
#include <optional>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/model/device.h"
#include "svmoe/train/training_job.h"
#include "svmoe/util/logging.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace {

// A flag's text as its key's type: a path, string or choice stays text; numbers and the
// rest are read as YAML, as --set reads them.
Json flag_json(const std::string& key, const std::string& text, const std::string& flag) {
  switch (setting_spec(key).type) {
    case SettingType::kString:
    case SettingType::kChoice:
    case SettingType::kPath:
    case SettingType::kStrings:
      return text;
    default:
      return yaml_to_json(text, flag);
  }
}

}  // namespace

void add_config_options(CLI::App& command, ConfigOptions& options) {
  command.add_option("-c,--config", options.files, "experiment config file(s), YAML or JSON; later ones win")
      ->check(CLI::ExistingFile);
  command.add_option("--set", options.overrides, "override a config value: --set section.key=value (repeatable)");
  command.add_flag("--print-config", options.print_config, "print the resolved config and exit");
  command.add_option("--log-level", options.log_level, "trace, debug, info, warn, error (runtime.log_level)");
  command.add_option("--device", options.device, "auto, cpu, cuda or cuda:N (runtime.device)");
}

bool resolve_config(const ConfigOptions& options, const std::vector<FlagValue>& flags, ConfigTree& config) {
  for (const auto& file : options.files) config.merge_file(file);
  for (const auto& assignment : options.overrides) config.apply_override(assignment, "--set");
  std::vector<FlagValue> all = flags;
  if (!options.log_level.empty()) all.push_back({"runtime.log_level", options.log_level, "--log-level"});
  if (!options.device.empty()) all.push_back({"runtime.device", options.device, "--device"});
  for (const auto& flag : all) {
    if (!flag.value.is_null()) config.set(flag.key, flag.value, flag.flag + " flag");
  }
  if (options.print_config) {
    std::cout << config.dump() << std::endl;
    return false;
  }
  const RuntimeSettings runtime = parse_runtime_settings(config);
  setup_logging(runtime.log_level);
  set_cpu_threads(runtime.threads);
  return true;
}

void add_config_command(CLI::App& app, const ConfigCommand& row) {
  CLI::App* command = app.add_subcommand(row.name, row.help);
  struct Given {
    ConfigOptions config;
    std::map<std::string, std::vector<std::string>> values;  // flag -> what was given
    std::map<std::string, bool> switches;                    // kSwitch flag -> given
  };
  auto given = std::make_shared<Given>();
  add_config_options(*command, given->config);
  for (const ConfigFlag& flag : row.flags) {
    const std::string help = (flag.help.empty() ? setting_spec(flag.key).help : flag.help) + " (" + flag.key + ")";
    if (flag.kind == FlagKind::kSwitch) {
      command->add_flag(flag.name, given->switches[flag.name], help);
      continue;
    }
    CLI::Option* option = command->add_option(flag.name, given->values[flag.name], help);
    if (flag.kind != FlagKind::kList) option->expected(1);
  }
  command->callback([row, given] {
    if (row.stop_handlers_first) install_stop_handlers();
    std::vector<FlagValue> flags;
    for (const ConfigFlag& flag : row.flags) {
      if (flag.kind == FlagKind::kSwitch) {
        if (given->switches.at(flag.name)) flags.push_back({flag.key, Json(flag.switch_value), flag.name});
        continue;
      }
      const std::vector<std::string>& texts = given->values.at(flag.name);
      if (texts.empty()) continue;
      Json value;
      if (flag.kind == FlagKind::kValue) {
        value = flag_json(flag.key, texts.front(), flag.name);
      } else {
        value = Json::array();
        for (const auto& text : texts)
          value.push_back(flag.kind == FlagKind::kList ? Json(text) : yaml_to_json(text, flag.name));
      }
      flags.push_back({flag.key, value, flag.name});
    }
    ConfigTree config(default_config());
    if (!resolve_config(given->config, flags, config)) return;
    if (const auto* stage = std::get_if<Stage>(&row.run)) {
      std::optional<TrainingContext> training;
      const StageRequest request{parse_runtime_settings(config), std::nullopt};
      const StageOutcome outcome = run_stage(parse_stage_inputs(*stage, config), request, training);
      std::cout << outcome.summary << std::flush;
      if (outcome.interrupted) throw ExitRequest{kExitRequeue};  // Slurm's scripts requeue on it
    } else {
      std::get<void (*)(const ConfigTree&)>(row.run)(config);
    }
  });
}

void add_config_reference_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand("config-reference",
                                         "print every config key (type, default, meaning) as Markdown: docs/config.md");
  command->callback([] { std::cout << config_reference_markdown(); });
}

}  // namespace svmoe::cli
