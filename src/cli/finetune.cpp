// svmoe finetune -c CONFIG: train a model as a causal LM on prepared subdomains (SPEC.md §4).
#include "svmoe/stages/finetune.h"
#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace {
struct FinetuneOptions {
  ConfigOptions config;
  std::string model, dataset, output;
  std::int64_t steps = 0;
};
}  // namespace

void add_finetune_command(CLI::App& app) {
  auto* command = app.add_subcommand("finetune", "train a model as a causal LM on subdomains of a prepared dataset");
  auto options = std::make_shared<FinetuneOptions>();
  add_config_options(*command, options->config);
  command->add_option("--model", options->model, "the model to train, a Hugging Face directory (finetune.model)");
  command->add_option("--dataset", options->dataset, "a dataset directory from svmoe prepare (finetune.dataset)");
  command->add_option("--output", options->output, "the run directory (finetune.output)");
  command->add_option("--steps", options->steps, "optimizer steps (finetune.train.steps)");
  command->callback([options] {
    install_stop_handlers();  // from the start: a signal while loading still ends in a clean stop
    ConfigTree config(default_config());
    const FlagValues flags = {{"finetune.model", flag_text(options->model)},
                              {"finetune.dataset", flag_text(options->dataset)},
                              {"finetune.output", flag_text(options->output)},
                              {"finetune.train.steps", options->steps > 0 ? Json(options->steps) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    const RuntimeSettings runtime = parse_runtime_settings(config);
    const TrainResult result = run_finetune(parse_finetune_settings(config), parse_train_settings(config, "finetune"),
                                            runtime, start_training(runtime));
    if (result.interrupted) throw ExitRequest{kExitRequeue};
  });
}

}  // namespace svmoe::cli
