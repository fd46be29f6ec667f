// Helpers shared by the tests: fixture paths, scratch directories, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/setting_table.h"

namespace svmoe::test {

// tests/data in the source tree.
std::filesystem::path data_dir();
std::filesystem::path model_fixture(const std::string& name);

// A fresh directory under the build's temp folder, removed when the test ends.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs the svmoe executable with `arguments` (a shell-quoted string).
CommandResult run_svmoe(const std::string& arguments);

// `path` in single quotes, for the command lines of run_svmoe and std::system (test paths hold
// no quote).
std::string quoted(const std::filesystem::path& path);

void write_text(const std::filesystem::path& path, const std::string& text);

// Messages of an exception thrown by `body`, or "" if none was thrown.
template <typename Exception, typename Body>
std::string error_message(Body&& body) {
  try {
    body();
  } catch (const Exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace svmoe::test

namespace svmoe::test {

// Runs scripts/reference/sklearn_reference.py MODE on `request` through /usr/bin/python3
// (Debian's python3-sklearn, installed by scripts/install-deps.sh) and returns its answer.
nlohmann::json sklearn_reference(const std::string& mode, const nlohmann::json& request);

// TensorBoard event FILES as read by scripts/reference/tensorboard-events.sh (npm tfrecord and
// protobufjs; ctest installs them first): [{"file": ..., "events": [...]}, ...].
nlohmann::json tensorboard_reference(const std::vector<std::filesystem::path>& files);

// data/example/ci.jsonl (scripts/get-example-corpus.sh writes it; scripts/test.sh runs that).
std::filesystem::path example_ci_corpus();

// DIR/dataset: the CI corpus prepared into `subdomains` subdomains with the unigram fixture tokenizer.
std::filesystem::path ci_dataset(const std::filesystem::path& dir, int subdomains);

// DIR/moe: `experts` randomly initialised copies of the llama_mha_untied fixture's architecture
// (different seeds), merged into a top-`top_k` MoE with svmoe merge.
std::filesystem::path tiny_moe(const std::filesystem::path& dir, int experts, int top_k);

// An svmoe run experiment as a user writes it (sections without paths, run.dir = `dir`): a base
// model of the llama_mha_untied fixture's shape pretrained first, 3 subdomains, short training.
// A value for the setting row that its checks accept and that differs from its default (null for
// records, mappings and stage `train` sections).
nlohmann::json another_valid_value(const SettingSpec& row);

ConfigTree pipeline_experiment(const std::filesystem::path& dir, const std::vector<std::string>& overrides = {});

}  // namespace svmoe::test
