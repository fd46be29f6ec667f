// svmoe report -c CONFIG: the experiment's figures and tables as one self-contained HTML file.
#include "svmoe/stages/report.h"

#include <iostream>

#include "commands.h"
#include "svmoe/config/settings.h"

namespace svmoe::cli {
namespace {
struct ReportOptions {
  ConfigOptions config;
  std::string output, text;
};
}  // namespace

void add_report_command(CLI::App& app) {
  auto* command = app.add_subcommand("report",
                                     "one self-contained HTML page: loss curves, expert selection, "
                                     "routed text and the tables (after svmoe eval)");
  auto options = std::make_shared<ReportOptions>();
  add_config_options(*command, options->config);
  command->add_option("--output", options->output, "the HTML file (report.output; default EVAL_OUTPUT/report.html)");
  command->add_option("--text", options->text, "a text whose routing to show (report.text)");
  command->callback([options] {
    ConfigTree config(default_config());
    const FlagValues flags = {{"report.output", flag_text(options->output)}, {"report.text", flag_text(options->text)}};
    if (!resolve_config(options->config, flags, config)) return;
    const auto path =
        run_report(parse_report_settings(config), parse_eval_settings(config), parse_runtime_settings(config));
    std::cout << path.string() << "\n";
  });
}

}  // namespace svmoe::cli
