#include "server_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace svmoe::test {

ServerProcess::ServerProcess(const std::vector<std::string>& arguments, const std::filesystem::path& log_file)
    : log_file_(log_file) {
  std::vector<std::string> argv_text = {SVMOE_BINARY, "serve", "--port", "0", "--device", "cpu"};
  argv_text.insert(argv_text.end(), arguments.begin(), arguments.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const std::regex listening(R"(listening on http://127\.0\.0\.1:([0-9]+))");
  for (int i = 0; i < 600 && port_ == 0; ++i) {
    std::smatch match;
    const auto text = log();
    if (std::regex_search(text, match, listening)) {
      port_ = std::stoi(match[1]);
      break;
    }
    if (!running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (port_ == 0) ADD_FAILURE() << "svmoe serve did not start listening:\n" << log();
}

ServerProcess::~ServerProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string ServerProcess::log() const {
  std::ifstream in(log_file_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool ServerProcess::running() {
  if (exited_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

int ServerProcess::stop(int signal, std::chrono::seconds timeout) {
  if (exited_) return -1;
  ::kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

namespace {
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}
}  // namespace

long ServerProcess::rss_kib() const { return status_kib(pid_, "VmRSS"); }
long ServerProcess::peak_rss_kib() const { return status_kib(pid_, "VmHWM"); }

}  // namespace svmoe::test
