// svmoe prepare -c CONFIG: corpus -> dataset directory (SPEC.md §2).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"
#include "svmoe/stages/prepare.h"

namespace svmoe::cli {
namespace {

struct PrepareOptions {
  ConfigOptions config;
  std::vector<std::string> corpus;
  std::string output, tokenizer;
  int num_subdomains = 0;
};

}  // namespace

void add_prepare_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "prepare",
      "split a categorised JSONL corpus into subdomains; write token shards and the router's TF-IDF targets");
  auto options = std::make_shared<PrepareOptions>();
  add_config_options(*command, options->config);
  command->add_option("--corpus", options->corpus, "JSONL files or directories (prepare.corpus)");
  command->add_option("--output", options->output, "dataset directory to write (prepare.output)");
  command->add_option("--tokenizer", options->tokenizer,
                      "model directory, tokenizer.json or tokenizer.model (prepare.tokenizer)");
  command->add_option("--subdomains", options->num_subdomains, "number of subdomains N (prepare.num_subdomains)");
  command->callback([options] {
    ConfigTree config(default_config());
    const FlagValues flags = {
        {"prepare.corpus", options->corpus.empty() ? Json() : Json(options->corpus)},
        {"prepare.output", flag_text(options->output)},
        {"prepare.tokenizer", flag_text(options->tokenizer)},
        {"prepare.num_subdomains", options->num_subdomains > 0 ? Json(options->num_subdomains) : Json()}};
    if (!resolve_config(options->config, flags, config)) return;
    const RuntimeSettings runtime = parse_runtime_settings(config);
    const PrepareSettings settings = parse_prepare_settings(config);
    Json recorded = config.root();
    recorded.erase("forward");
    const PrepareResult result = run_prepare(settings, runtime, recorded);
    std::cout << "\nTable 1: tokens per subdomain and split\n\n" << result.table1_markdown;
    std::cout << "\nTable 4: categories of each subdomain\n\n" << result.table4_markdown << std::flush;
  });
}

}  // namespace svmoe::cli
