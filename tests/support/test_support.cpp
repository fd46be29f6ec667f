#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>

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

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace svmoe::test

namespace svmoe::test {

nlohmann::json sklearn_reference(const std::string& mode, const nlohmann::json& request) {
  ScratchDir dir;
  write_text(dir / "request.json", request.dump());
  const std::string command = "/usr/bin/python3 '" + std::string(SVMOE_SOURCE_DIR) +
                              "/scripts/reference/sklearn_reference.py' " + mode + " '" +
                              (dir / "request.json").string() + "' '" + (dir / "answer.json").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  if (status != 0) {
    throw std::runtime_error(
        "the scikit-learn reference script failed (is python3-sklearn installed? "
        "scripts/install-deps.sh installs it): " +
        command);
  }
  std::ifstream in(dir / "answer.json");
  return nlohmann::json::parse(in);
}

fs::path example_ci_corpus() {
  const fs::path path = fs::path(SVMOE_SOURCE_DIR) / "data" / "example" / "ci.jsonl";
  if (!fs::exists(path)) {
    throw std::runtime_error(path.string() + " is missing: run scripts/get-example-corpus.sh (scripts/test.sh does)");
  }
  return path;
}

}  // namespace svmoe::test
