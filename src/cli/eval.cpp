// svmoe eval -c CONFIG: the paper's metrics and tables (SPEC.md §5).
#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/stages/evaluate.h"

namespace svmoe::cli {
namespace {
struct EvalOptions {
  ConfigOptions config;
  std::string dataset, output;
  std::vector<std::string> splits;
  std::int64_t max_documents = -1;
};
}  // namespace

void add_eval_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("eval", "PPL, CMR_1, CMR_2, S_RL and expert selection of models; the paper's tables");
  auto options = std::make_shared<EvalOptions>();
  add_config_options(*command, options->config);
  command->add_option("--dataset", options->dataset, "a dataset directory from svmoe prepare (eval.dataset)");
  command->add_option("--output", options->output, "where the tables go (eval.output)");
  command->add_option("--split", options->splits, "train, valid or test; repeatable (eval.splits)");
  command->add_option("--max-documents", options->max_documents,
                      "per subdomain and split; 0: all (eval.max_documents)");
  command->callback([options] {
    ConfigTree config(default_config());
    const FlagValues flags = {
        {"eval.dataset", flag_text(options->dataset)},
        {"eval.output", flag_text(options->output)},
        {"eval.splits", options->splits.empty() ? Json() : Json(options->splits)},
        {"eval.max_documents", options->max_documents >= 0 ? Json(options->max_documents) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    run_eval(parse_eval_settings(config), parse_runtime_settings(config));
  });
}

}  // namespace svmoe::cli
