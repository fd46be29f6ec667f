#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/model/device.h"
#include "svmoe/util/logging.h"

namespace svmoe::cli {

void add_config_options(CLI::App& command, ConfigOptions& options) {
  command.add_option("-c,--config", options.files, "experiment config file(s), YAML or JSON; later ones win")
      ->check(CLI::ExistingFile);
  command.add_option("--set", options.overrides, "override a config value: --set section.key=value (repeatable)");
  command.add_flag("--print-config", options.print_config, "print the resolved config and exit");
  command.add_option("--log-level", options.log_level, "trace, debug, info, warn, error (runtime.log_level)");
  command.add_option("--device", options.device, "auto, cpu, cuda or cuda:N (runtime.device)");
}

bool resolve_config(const ConfigOptions& options, const FlagValues& flag_values, ConfigTree& config) {
  for (const auto& file : options.files) config.merge_file(file);
  for (const auto& assignment : options.overrides) config.apply_override(assignment, "--set");
  FlagValues flags = flag_values;
  if (!options.log_level.empty()) flags.emplace_back("runtime.log_level", options.log_level);
  if (!options.device.empty()) flags.emplace_back("runtime.device", options.device);
  for (const auto& [key, value] : flags) {
    if (!value.is_null()) config.set(key, value, "--" + key.substr(key.find('.') + 1) + " flag");
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

}  // namespace svmoe::cli
