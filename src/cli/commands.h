// The subcommands of the svmoe executable. The ones that only run a library call on the
// experiment config are rows of one table (config_commands.cpp); the others (inspect, tokenize,
// run, status, plan, bench, config-reference) have a file each. cli/ parses and dispatches; the work is
// in the library.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <variant>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/stages/stage.h"

namespace svmoe::cli {

// Thrown by a subcommand to end the program with a given exit code (not an error).
struct ExitRequest {
  int code;
};

// -c/--config, --set, --print-config: shared by every subcommand that reads an experiment config.
struct ConfigOptions {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  bool print_config = false;
  std::string log_level;
  std::string device;
};

void add_config_options(CLI::App& command, ConfigOptions& options);

// A dedicated flag's value: the config key it sets, the value (null when not given) and the flag.
struct FlagValue {
  std::string key;
  Json value;
  std::string flag;
};

// Defaults, then the files, then --set, then the subcommand's own flags. Sets up logging at the
// resolved level. Returns false when --print-config printed the tree and the command should stop.
bool resolve_config(const ConfigOptions& options, const std::vector<FlagValue>& flags, ConfigTree& config);

// A subcommand's flag that sets one config key (its help and type are the setting table's).
enum class FlagKind {
  kValue,        // one value
  kList,         // one or more values (repeatable): a list
  kOneItemList,  // one value, set as a list of one (--expert N: train_experts.experts [N])
  kSwitch,       // no value: sets the key to `switch_value` (--routing: true, --no-kv-cache: false)
};
struct ConfigFlag {
  std::string name;  // --model
  std::string key;   // forward.model
  FlagKind kind = FlagKind::kValue;
  std::string help = {};     // empty: the setting table's help for `key`
  bool switch_value = true;  // kSwitch's
};

// A subcommand that resolves the config and makes one library call: a stage (stages/stage.h), or
// `run` for the ones that are not stages (forward, generate).
struct ConfigCommand {
  std::string name, help;
  std::vector<ConfigFlag> flags;
  bool stop_handlers_first = false;  // training: a signal while loading still ends in a clean stop
  std::variant<Stage, void (*)(const ConfigTree& config)> run;
};
void add_config_command(CLI::App& app, const ConfigCommand& command);

void add_config_commands(
    CLI::App& app);  // forward, generate, prepare, train-experts, merge, train-router, finetune, eval, report
void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_status_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_config_reference_command(CLI::App& app);

}  // namespace svmoe::cli
