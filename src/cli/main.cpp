// svmoe: build Mixture-of-Experts LMs from dense ones by the SvMoE recipe (see README.md).
// One error handler for the whole program: library errors are printed once, with their hint,
// and give the exit codes documented in README.md.
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "commands.h"
#include "svmoe/util/error.h"
#include "svmoe/util/logging.h"

namespace {

int report(const std::string& message, const std::string& hint, svmoe::ExitCode code) {
  spdlog::error("{}", message);
  if (!hint.empty()) spdlog::error("hint: {}", hint);
  return static_cast<int>(code);
}

}  // namespace

int main(int argc, char** argv) {
  svmoe::setup_logging("info");
  CLI::App app{"svmoe " SVMOE_VERSION
               ": Mixture-of-Experts language models from dense ones (SvMoE: train experts, merge, "
               "teach the routers with TF-IDF, fine-tune)",
               "svmoe"};
  app.set_version_flag("--version", "svmoe " SVMOE_VERSION);
  app.require_subcommand(1);
  svmoe::cli::add_inspect_command(app);
  svmoe::cli::add_tokenize_command(app);
  svmoe::cli::add_config_commands(app);
  svmoe::cli::add_run_command(app);
  svmoe::cli::add_status_command(app);
  svmoe::cli::add_plan_command(app);
  svmoe::cli::add_bench_command(app);
  svmoe::cli::add_config_reference_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the parse error
    return code == 0 ? 0 : static_cast<int>(svmoe::ExitCode::kUsage);
  } catch (const svmoe::cli::ExitRequest& request) {
    return request.code;
  } catch (const svmoe::Error& e) {
    return report(e.what(), e.hint(), e.exit_code());
  } catch (const c10::Error& e) {
    return report(std::string("LibTorch: ") + e.what_without_backtrace(),
                  "this is likely a bug in svmoe; please report it with the command line", svmoe::ExitCode::kFailure);
  } catch (const std::exception& e) {
    return report(e.what(), "", svmoe::ExitCode::kFailure);
  }
  return 0;
}
