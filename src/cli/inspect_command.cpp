// svmoe inspect DIR: a checkpoint's config, its tokenizer and a table of its tensors.
#include <iostream>

#include "commands.h"
#include "svmoe/io/checkpoint_summary.h"

namespace svmoe::cli {

void add_inspect_command(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "print a checkpoint's config and a table of its parameters");
  auto directory = std::make_shared<std::string>();
  command->add_option("directory", *directory, "Hugging Face checkpoint directory")->required();
  command->callback([directory] { std::cout << describe_checkpoint(load_hf_checkpoint(*directory)) << std::flush; });
}

}  // namespace svmoe::cli
