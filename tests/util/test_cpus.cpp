#include "svmoe/util/cpus.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

namespace svmoe {

TEST(AvailableCpus, FollowsTheAffinityMaskNotTheMachine) {
  EXPECT_GE(available_cpus(), 1u);
  EXPECT_LE(available_cpus(), std::max(1u, std::thread::hardware_concurrency()));
  // A child pinned to one CPU (as srun --cpus-per-task=1 or taskset -c 0 would) counts one.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    if (::sched_setaffinity(0, sizeof(one), &one) != 0) ::_exit(2);
    ::_exit(available_cpus() == 1 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace svmoe
