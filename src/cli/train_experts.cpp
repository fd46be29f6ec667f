// svmoe train-experts -c CONFIG [--expert n]: stage 1, one expert per subdomain (SPEC.md §4).
#include "svmoe/stages/train_experts.h"
#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/util/signals.h"

namespace svmoe::cli {
namespace {
struct TrainExpertsOptions {
  ConfigOptions config;
  std::string base_model, dataset, output;
  std::int64_t expert = -1;
  std::int64_t steps = 0;
};
}  // namespace

void add_train_experts_command(CLI::App& app) {
  auto* command = app.add_subcommand("train-experts", "stage 1: train one expert per subdomain from the base model");
  auto options = std::make_shared<TrainExpertsOptions>();
  add_config_options(*command, options->config);
  command->add_option("--base-model", options->base_model, "the dense base model (train_experts.base_model)");
  command->add_option("--dataset", options->dataset, "a dataset directory from svmoe prepare (train_experts.dataset)");
  command->add_option("--output", options->output, "the experts directory (train_experts.output)");
  command->add_option("--expert", options->expert,
                      "train only expert N (a Slurm array task: --expert $SLURM_ARRAY_TASK_ID)");
  command->add_option("--steps", options->steps, "optimizer steps per expert (train_experts.train.steps)");
  command->callback([options] {
    install_stop_handlers();
    ConfigTree config(default_config());
    const FlagValues flags = {{"train_experts.base_model", flag_text(options->base_model)},
                              {"train_experts.dataset", flag_text(options->dataset)},
                              {"train_experts.output", flag_text(options->output)},
                              {"train_experts.experts", options->expert >= 0 ? Json::array({options->expert}) : Json()},
                              {"train_experts.train.steps", options->steps > 0 ? Json(options->steps) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    const RuntimeSettings runtime = parse_runtime_settings(config);
    const auto result =
        run_train_experts(parse_train_experts_settings(config), parse_train_settings(config, "train_experts"), runtime,
                          start_training(runtime));
    if (result.interrupted) throw ExitRequest{kExitRequeue};
  });
}

}  // namespace svmoe::cli
