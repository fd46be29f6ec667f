// One writer per output directory. A writer holds an exclusive flock(2) on DIR.lock, a file
// beside DIR (beside, not inside: prepare and merge build DIR.partial and rename it over DIR).
// The lock file says who holds it (host, pid, command, start time), so a second writer can
// name the holder in its error. The kernel releases the lock when its holder dies, so a lock
// left by a killed process is free; the holder's lines are still in the file (a clean release
// empties it), and the next writer says that it takes over. Readers take no lock.
// Shared holders (the processes of a Slurm DAG's `svmoe run --only STEP` jobs, each of which
// also locks its step's output exclusively) exclude an exclusive holder and are not recorded.
// Where the file system has no locks (Lustre mounted without -o flock, say), svmoe warns once
// and writes without one (docs/reliability.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "svmoe/util/error.h"

namespace svmoe {

// Another process holds the lock on a directory svmoe was asked to write.
class LockError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kBusy; }
};

enum class LockMode { kExclusive, kShared };

class DirectoryLock {
 public:
  // Locks `directory` for this process (`purpose` names the writer in the lock file, e.g.
  // "finetune"). Throws LockError naming the holder when another process holds it, IoError
  // when the lock file cannot be created.
  static DirectoryLock acquire(const std::filesystem::path& directory, const std::string& purpose,
                               LockMode mode = LockMode::kExclusive);

  DirectoryLock(DirectoryLock&& other) noexcept;
  DirectoryLock& operator=(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  ~DirectoryLock();  // empties the lock file and releases the lock

  const std::filesystem::path& lock_file() const { return path_; }
  bool held() const { return fd_ >= 0; }  // false where the file system has no locks

 private:
  DirectoryLock(std::filesystem::path path, int fd, LockMode mode) : path_(std::move(path)), fd_(fd), mode_(mode) {}
  void release();

  std::filesystem::path path_;
  int fd_ = -1;
  LockMode mode_ = LockMode::kExclusive;
};

// DIR.lock: the file the lock of DIR is taken on.
std::filesystem::path lock_file_path(const std::filesystem::path& directory);

// Who holds DIR's lock, as its lock file says, for readers such as `svmoe status`. It takes no
// lock itself (a reader must never make a writer fail): a holder that was killed left its lines,
// so `alive` is checked where it can be, on the holder's host; elsewhere (a login node watching a
// compute node's job) a recorded holder counts as alive. Nothing where the file is missing or
// empty (a clean release empties it).
struct LockHolder {
  std::string host, pid, purpose, started, command;
  bool on_this_host = false;
  bool alive = false;
};
std::optional<LockHolder> read_lock_holder(const std::filesystem::path& directory);

}  // namespace svmoe
