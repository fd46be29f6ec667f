#include "svmoe/util/directory_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// Runs `body` in a child process and waits for it; the child's exit status.
template <typename Body>
int in_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int status = 1;
    try {
      status = body();
    } catch (...) {
      status = 2;
    }
    ::_exit(status);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(DirectoryLock, TheLockFileSitsBesideTheDirectory) {
  EXPECT_EQ(lock_file_path("runs/x"), fs::path("runs/x.lock"));
  EXPECT_EQ(lock_file_path("runs/x/"), fs::path("runs/x.lock"));
  EXPECT_EQ(lock_file_path("runs/./x"), fs::path("runs/x.lock"));
}

TEST(DirectoryLock, ASecondWriterFailsAtOnceNamingTheHolder) {
  test::ScratchDir dir;
  const fs::path out = dir / "model";
  const auto lock = DirectoryLock::acquire(out, "finetune");
  ASSERT_TRUE(lock.held());
  // A second process (the fork) cannot take it, and its error names this process.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const int status = in_child([&] {
    try {
      DirectoryLock::acquire(out, "merge");
      return 0;
    } catch (const LockError& e) {
      const std::string message = std::string(e.what()) + "\n" + e.hint();
      [[maybe_unused]] const auto n = ::write(pipe_fds[1], message.data(), message.size());
      return e.exit_code() == ExitCode::kBusy ? 3 : 4;
    }
  });
  ::close(pipe_fds[1]);
  char buffer[4096] = {};
  [[maybe_unused]] const auto n = ::read(pipe_fds[0], buffer, sizeof(buffer) - 1);
  ::close(pipe_fds[0]);
  EXPECT_EQ(status, 3);
  const std::string message = buffer;
  EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
  EXPECT_NE(message.find("svmoe finetune"), std::string::npos) << message;
  EXPECT_NE(message.find(out.string()), std::string::npos) << message;
}

TEST(DirectoryLock, ALockIsFreeAgainOnceReleasedAndSaysSoInItsFile) {
  test::ScratchDir dir;
  const fs::path out = dir / "eval";
  {
    const auto lock = DirectoryLock::acquire(out, "eval");
    EXPECT_NE(read_text_file(lock.lock_file()).find("purpose: eval"), std::string::npos);
  }
  EXPECT_EQ(read_text_file(lock_file_path(out)), "");  // a clean release empties it
  EXPECT_EQ(in_child([&] { return DirectoryLock::acquire(out, "eval").held() ? 0 : 1; }), 0);
}

TEST(DirectoryLock, ALockLeftByAKilledProcessIsTakenOver) {
  test::ScratchDir dir;
  const fs::path out = dir / "experts";
  // The child takes the lock and dies without releasing it (as under kill -9).
  const int status = in_child([&] {
    auto lock = DirectoryLock::acquire(out, "train-experts");
    ::raise(SIGKILL);
    return 0;
  });
  ASSERT_EQ(status, 128 + SIGKILL);
  EXPECT_NE(read_text_file(lock_file_path(out)).find("train-experts"), std::string::npos);
  const auto lock = DirectoryLock::acquire(out, "train-experts");
  EXPECT_TRUE(lock.held());
  EXPECT_NE(read_text_file(lock.lock_file()).find("pid: " + std::to_string(::getpid())), std::string::npos);
}

TEST(DirectoryLock, TwoLocksInOneProcessAlsoExcludeEachOther) {
  test::ScratchDir dir;
  const auto first = DirectoryLock::acquire(dir / "run", "run");
  EXPECT_THROW(DirectoryLock::acquire(dir / "run", "run"), LockError);
  EXPECT_NO_THROW(DirectoryLock::acquire(dir / "run" / "eval", "eval"));  // another directory
}

TEST(DirectoryLock, SharedHoldersCoexistAndExcludeAnExclusiveOne) {
  test::ScratchDir dir;
  const auto first = DirectoryLock::acquire(dir / "run", "run --only a", LockMode::kShared);
  EXPECT_EQ(
      in_child([&] { return DirectoryLock::acquire(dir / "run", "run --only b", LockMode::kShared).held() ? 0 : 1; }),
      0);
  EXPECT_EQ(in_child([&] {
              try {
                DirectoryLock::acquire(dir / "run", "run");
                return 0;
              } catch (const LockError& e) {
                return std::string(e.what()).find("shared") != std::string::npos ? 3 : 4;
              }
            }),
            3);
}

}  // namespace svmoe
