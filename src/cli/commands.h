// The subcommands of the svmoe executable. Each file adds one subcommand to the app; the
// subcommand's callback parses its settings, then calls the library.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

#include "svmoe/config/config_tree.h"

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

// A dedicated flag of a subcommand: the config key it sets and its value (null when not given).
using FlagValues = std::vector<std::pair<std::string, Json>>;

// A string flag's value: null when the flag was not given (empty).
inline Json flag_text(const std::string& value) { return value.empty() ? Json() : Json(value); }

// Defaults, then the files, then --set, then the subcommand's own flags. Sets up logging at the
// resolved level. Returns false when --print-config printed the tree and the command should stop.
bool resolve_config(const ConfigOptions& options, const FlagValues& flag_values, ConfigTree& config);

void add_inspect_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_finetune_command(CLI::App& app);
void add_train_experts_command(CLI::App& app);
void add_train_router_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace svmoe::cli
