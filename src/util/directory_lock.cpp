#include "svmoe/util/directory_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "svmoe/util/strings.h"

// The lock is flock(2) on DIR.lock, not the file's existence: the kernel drops it when the holder
// exits however it exits (a crash, SIGKILL, a node's OOM killer), so a stale file never blocks a
// rerun. The file's content only tells people (and the error) who holds it.
namespace svmoe {
namespace fs = std::filesystem;

fs::path lock_file_path(const fs::path& directory) {
  fs::path path = directory.lexically_normal();
  if (!path.has_filename()) path = path.parent_path();  // "runs/x/" names runs/x
  path += ".lock";
  return path;
}

namespace {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

// The command line of this process, for people (arguments joined by spaces).
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw) {
    if (c == '\0' || c == '\n') c = ' ';
  }
  return raw.empty() ? "svmoe" : raw;
}

// The lock file holds "key: value" lines (host, pid, purpose, command, started), readable by
// `cat` as well as by the next writer.
std::map<std::string, std::string> read_holder(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t got = 0;
  off_t offset = 0;
  while ((got = ::pread(fd, buffer, sizeof(buffer), offset)) > 0) {
    text.append(buffer, static_cast<std::size_t>(got));
    offset += got;
  }
  std::map<std::string, std::string> holder;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto colon = line.find(": ");
    if (colon != std::string::npos) holder[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return holder;
}

std::string describe_holder(std::map<std::string, std::string> holder) {
  if (holder.empty()) return "one or more `svmoe run --only` processes (e.g. a Slurm DAG's jobs), which hold it shared";
  return "pid " + holder["pid"] + " on " + holder["host"] + " (svmoe " + holder["purpose"] + ", started " +
         holder["started"] + ": " + holder["command"] + ")";
}

// kill(pid, 0) sends nothing and only checks: EPERM means the process exists under another user.
// Meaningful on this host only; a pid from another host says nothing here.
bool process_alive(const std::string& pid_text) {
  try {
    const long pid = std::stol(pid_text);
    return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
  } catch (const std::exception&) {
    return false;
  }
}

void write_holder(int fd, const fs::path& path, const std::string& purpose) {
  const std::string text = "host: " + host_name() + "\npid: " + std::to_string(::getpid()) + "\npurpose: " + purpose +
                           "\ncommand: " + command_line() + "\nstarted: " + utc_timestamp_now() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    throw IoError(describe_errno("cannot write the lock file '" + path.string() + "'"), "check free disk space");
  }
}

}  // namespace

DirectoryLock DirectoryLock::acquire(const fs::path& directory, const std::string& purpose, LockMode mode) {
  const fs::path path = lock_file_path(directory);
  if (path.has_parent_path()) {
    std::error_code ignored;
    fs::create_directories(path.parent_path(), ignored);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(describe_errno("cannot create the lock file '" + path.string() + "'"),
                  "svmoe writes DIR.lock beside each directory it writes: check that '" + path.parent_path().string() +
                      "' is writable");
  }
  // Non-blocking: a second writer is told who writes now, rather than waiting without a word.
  const bool exclusive = mode == LockMode::kExclusive;
  if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      const std::string holder = describe_holder(read_holder(fd));
      ::close(fd);
      throw LockError("'" + directory.string() + "' is being written by another svmoe process: " + holder,
                      "wait for it to finish (or stop it) and run again; two writers on one directory would mix their "
                      "outputs. If that process is gone on another host, delete '" +
                          path.string() + "'");
    }
    // ENOLCK, EOPNOTSUPP, ENOSYS, EINVAL: this file system keeps no locks.
    spdlog::warn(
        "the file system of '{}' has no file locks ({}): svmoe cannot stop a second process from writing it "
        "(docs/reliability.md says which mount options give locks)",
        path.string(), std::strerror(error));
    ::close(fd);
    return DirectoryLock(path, -1, mode);
  }
  if (!exclusive) return DirectoryLock(path, fd, mode);  // shared holders leave the record alone
  // We hold the lock, so a non-empty record is one a holder did not empty on release: it ended
  // without releasing (killed, crashed). Say so, since its outputs may be partial.
  const auto previous = read_holder(fd);
  if (!previous.empty()) {
    const auto at = previous.find("host");
    const bool same_host = at != previous.end() && at->second == host_name();
    const auto pid = previous.find("pid");
    if (!same_host || pid == previous.end() || !process_alive(pid->second)) {
      spdlog::warn("taking over the lock on '{}' left by {}, which ended without releasing it{}", directory.string(),
                   describe_holder(previous), same_host ? " (no longer running)" : "");
    }
  }
  try {
    write_holder(fd, path, purpose);
  } catch (...) {
    ::close(fd);
    throw;
  }
  return DirectoryLock(path, fd, mode);
}

DirectoryLock::DirectoryLock(DirectoryLock&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), mode_(other.mode_) {
  other.fd_ = -1;
}

DirectoryLock& DirectoryLock::operator=(DirectoryLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    mode_ = other.mode_;
    other.fd_ = -1;
  }
  return *this;
}

DirectoryLock::~DirectoryLock() { release(); }

void DirectoryLock::release() {
  if (fd_ < 0) return;
  // An empty lock file says its last holder let go cleanly; closing drops the flock.
  if (mode_ == LockMode::kExclusive && ::ftruncate(fd_, 0) != 0) {
    spdlog::debug("could not empty the lock file '{}' (the next writer will say it takes the lock over)",
                  path_.string());
  }
  ::close(fd_);
  fd_ = -1;
}

std::optional<LockHolder> read_lock_holder(const fs::path& directory) {
  const int fd = ::open(lock_file_path(directory).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::map<std::string, std::string> lines = read_holder(fd);
  ::close(fd);
  if (lines.empty()) return std::nullopt;
  LockHolder holder{lines["host"], lines["pid"], lines["purpose"], lines["started"], lines["command"]};
  holder.on_this_host = holder.host == host_name();
  holder.alive = !holder.on_this_host || process_alive(holder.pid);
  return holder;
}

}  // namespace svmoe
