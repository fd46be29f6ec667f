// svmoe train-router -c CONFIG: stage 3, the routers against the TF-IDF targets (SPEC.md §4).
#include "svmoe/stages/train_router.h"
#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace {
struct TrainRouterOptions {
  ConfigOptions config;
  std::string model, dataset, output;
  std::int64_t steps = 0;
};
}  // namespace

void add_train_router_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("train-router", "stage 3: train only the routers of a merged MoE on the TF-IDF targets");
  auto options = std::make_shared<TrainRouterOptions>();
  add_config_options(*command, options->config);
  command->add_option("--model", options->model, "the merged MoE, a Hugging Face directory (train_router.model)");
  command->add_option("--dataset", options->dataset, "a dataset directory from svmoe prepare (train_router.dataset)");
  command->add_option("--output", options->output, "the run directory (train_router.output)");
  command->add_option("--steps", options->steps, "optimizer steps (train_router.train.steps)");
  command->callback([options] {
    install_stop_handlers();  // from the start: a signal while loading still ends in a clean stop
    ConfigTree config(default_config());
    const FlagValues flags = {{"train_router.model", flag_text(options->model)},
                              {"train_router.dataset", flag_text(options->dataset)},
                              {"train_router.output", flag_text(options->output)},
                              {"train_router.train.steps", options->steps > 0 ? Json(options->steps) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    const RuntimeSettings runtime = parse_runtime_settings(config);
    const TrainResult result =
        run_train_router(parse_train_router_settings(config), parse_train_settings(config, "train_router"), runtime,
                         start_training(runtime));
    if (result.interrupted) throw ExitRequest{kExitRequeue};
  });
}

}  // namespace svmoe::cli
