// svmoe status DIR: each step of an experiment with its state, progress, last loss and ETA,
// read while `svmoe run` or its Slurm DAG goes on (stages/pipeline_status.h).
#include <iostream>

#include "commands.h"
#include "svmoe/stages/pipeline_status.h"

namespace svmoe::cli {

void add_status_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "status", "where an experiment stands: each step's state, progress, last loss and ETA (reads only)");
  auto directory = std::make_shared<std::string>();
  command->add_option("directory", *directory, "the experiment directory (run.dir) of a started svmoe run")->required();
  command->callback([directory] { std::cout << status_text(*directory, experiment_status(*directory)) << std::flush; });
}

}  // namespace svmoe::cli
