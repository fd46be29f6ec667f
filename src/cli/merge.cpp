// svmoe merge -c CONFIG: N dense experts -> one Mixtral MoE (SPEC.md §4, stage 2).
#include "svmoe/stages/merge.h"
#include "commands.h"
#include "svmoe/config/settings.h"

namespace svmoe::cli {
namespace {
struct MergeOptions {
  ConfigOptions config;
  std::vector<std::string> experts;
  std::string output;
  int top_k = 0;
};
}  // namespace

void add_merge_command(CLI::App& app) {
  auto* command = app.add_subcommand("merge", "merge N dense experts into one Mixtral MoE (BTX)");
  auto options = std::make_shared<MergeOptions>();
  add_config_options(*command, options->config);
  command->add_option("--experts", options->experts, "the expert checkpoint directories, in order (merge.experts)");
  command->add_option("--output", options->output, "the MoE directory to write (merge.output)");
  command->add_option("--top-k", options->top_k, "experts per token (merge.num_experts_per_tok)");
  command->callback([options] {
    ConfigTree config(default_config());
    const FlagValues flags = {{"merge.experts", options->experts.empty() ? Json() : Json(options->experts)},
                              {"merge.output", flag_text(options->output)},
                              {"merge.num_experts_per_tok", options->top_k > 0 ? Json(options->top_k) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    run_merge(parse_merge_settings(config), parse_runtime_settings(config));
  });
}

}  // namespace svmoe::cli
