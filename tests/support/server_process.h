// A real `svmoe serve` process for the end-to-end tests: started on a free port of 127.0.0.1,
// its log captured, stopped with a signal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace svmoe::test {

class ServerProcess {
 public:
  // Runs `svmoe serve --port 0 --device cpu ARGUMENTS...` and waits (up to a minute) for the log
  // line that names its port. ADD_FAILURE and port() 0 if it does not come.
  ServerProcess(const std::vector<std::string>& arguments, const std::filesystem::path& log_file);
  ~ServerProcess();  // SIGKILL if still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;
  bool running();
  // Sends `signal` and waits for the exit (up to `timeout`); the exit code, or -1 (killed or late).
  int stop(int signal, std::chrono::seconds timeout = std::chrono::seconds(60));
  // The process's resident memory now and at its peak (VmRSS, VmHWM), in KiB.
  long rss_kib() const;
  long peak_rss_kib() const;

 private:
  std::filesystem::path log_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
};

}  // namespace svmoe::test
