#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "svmoe/config/settings.h"
#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/model/initialization.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/prepare.h"

namespace svmoe::test {
namespace fs = std::filesystem;

fs::path data_dir() { return SVMOE_TEST_DATA_DIR; }
fs::path model_fixture(const std::string& name) { return data_dir() / "models" / name; }

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "scratch";
  for (auto& c : name) {
    if (c == '/') c = '_';
  }
  path_ = fs::path(SVMOE_TEST_TMP_DIR) / (name + "." + std::to_string(::getpid()) + "." + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CommandResult run_svmoe(const std::string& arguments) {
  const std::string command = std::string(SVMOE_BINARY) + " " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  std::array<char, 4096> buffer{};
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace svmoe::test

namespace svmoe::test {

namespace {

// Runs a reference script's `command` (which writes its JSON answer to `answer`) and reads the
// answer; a failed run names the command and `needs` (what the script depends on).
nlohmann::json run_reference(const std::string& command, const fs::path& answer, const std::string& needs) {
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("the reference script failed (" + needs + "): " + command);
  }
  std::ifstream in(answer);
  return nlohmann::json::parse(in);
}

}  // namespace

nlohmann::json sklearn_reference(const std::string& mode, const nlohmann::json& request) {
  ScratchDir dir;
  write_text(dir / "request.json", request.dump());
  const std::string command = "/usr/bin/python3 '" + std::string(SVMOE_SOURCE_DIR) +
                              "/scripts/reference/sklearn_reference.py' " + mode + " '" +
                              (dir / "request.json").string() + "' '" + (dir / "answer.json").string() + "' 2>&1";
  return run_reference(command, dir / "answer.json",
                       "is python3-sklearn installed? scripts/install-deps.sh installs it");
}

nlohmann::json tensorboard_reference(const std::vector<fs::path>& files) {
  ScratchDir dir;
  std::string command = "bash '" + std::string(SVMOE_SOURCE_DIR) + "/scripts/reference/tensorboard-events.sh'";
  for (const fs::path& file : files) command += " '" + file.string() + "'";
  command += " > '" + (dir / "read.json").string() + "'";
  return run_reference(command, dir / "read.json", "node and npm are needed; ctest installs the reader first");
}

fs::path example_ci_corpus() {
  const fs::path path = fs::path(SVMOE_SOURCE_DIR) / "data" / "example" / "ci.jsonl";
  if (!fs::exists(path)) {
    throw std::runtime_error(path.string() + " is missing: run scripts/get-example-corpus.sh (scripts/test.sh does)");
  }
  return path;
}

}  // namespace svmoe::test

namespace svmoe::test {

fs::path ci_dataset(const fs::path& dir, int subdomains) {
  PrepareSettings s;
  s.corpus = {example_ci_corpus()};
  s.tokenizer = data_dir() / "tokenizers" / "unigram";
  s.output = dir / "dataset";
  s.num_subdomains = subdomains;
  run_prepare(s, RuntimeSettings{}, Json::object());
  return s.output;
}

fs::path tiny_moe(const fs::path& dir, int experts, int top_k) {
  const HfCheckpoint base = load_hf_checkpoint(model_fixture("llama_mha_untied"));
  MergeSettings merge;
  for (int e = 0; e < experts; ++e) {
    CausalLM model(base.config);
    initialize_weights(*model, base.config.initializer_range, 100 + e);
    const fs::path expert = dir / ("dense_" + std::to_string(e));
    SaveOptions options;
    options.copy_tokenizer_from = data_dir() / "tokenizers" / "unigram";
    save_hf_checkpoint(expert, base.config, named_tensors(*model), options, base.raw_config);
    merge.experts.push_back(expert);
  }
  merge.output = dir / "moe";
  merge.num_experts_per_tok = top_k;
  run_merge(merge, RuntimeSettings{});
  return merge.output;
}

// An experiment as a user writes it: sections without paths, `run` naming the directory.
Json another_valid_value(const SettingSpec& row) {
  const Json& current = row.default_value;
  switch (row.type) {
    case SettingType::kString:
      return current.get<std::string>() + "-changed";
    case SettingType::kChoice:
      for (const auto& option : row.choices) {
        if (option != current.get<std::string>()) return option;
      }
      return nullptr;
    case SettingType::kInteger: {  // the next integer: the likeliest to pass rules between keys
      const auto value = current.get<std::int64_t>();
      return value < row.maximum.get<std::int64_t>() ? value + 1 : value - 1;
    }
    case SettingType::kNumber: {
      const double minimum = row.minimum.get<double>();
      const double maximum = std::min(row.maximum.get<double>(), minimum + 1.0);
      return current.get<double>() != maximum ? maximum : (minimum + maximum) / 2;
    }
    case SettingType::kBoolean:
      return !current.get<bool>();
    case SettingType::kPath:
      return "/tmp/changed/" + row.key;
    case SettingType::kStrings: {
      if (row.choices.empty()) return Json::array({"one", "two"});
      for (const auto& option : row.choices) {
        if (current != Json::array({option})) return Json::array({option});
      }
      return nullptr;
    }
    case SettingType::kIntegers:
      return Json::array({1, 2});
    case SettingType::kNumbers:
      return Json::array({0.5, 2.0});
    case SettingType::kRecords:
    case SettingType::kMapping:
    case SettingType::kTrainOverrides:
      break;
  }
  return nullptr;
}

ConfigTree pipeline_experiment(const std::filesystem::path& dir, const std::vector<std::string>& overrides) {
  ConfigTree config(default_config());
  config.merge(Json::parse(R"({
    "run": {"base_model": ")" +
                           model_fixture("llama_mha_untied").string() + R"(",
            "pretrain_base": {"enabled": true, "train": {"steps": 20}}},
    "prepare": {"corpus": ["corpus.jsonl"], "num_subdomains": 3},
    "train": {"steps": 50, "learning_rate": 0.003},
    "train_experts": {"train": {"steps": 10}},
    "train_router": {"train": {"learning_rate": 0.01}},
    "finetune": {"train": {"steps": 10}}
  })"),
               "test");
  config.set("run.dir", dir.string(), "test");
  for (const auto& assignment : overrides) config.apply_override(assignment);
  return config;
}

}  // namespace svmoe::test
