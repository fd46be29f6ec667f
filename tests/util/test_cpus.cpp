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
  // A child pinned to one CPU of its mask (as srun --cpus-per-task=1 or taskset would) counts one.
  cpu_set_t mask;
  CPU_ZERO(&mask);
  ASSERT_EQ(::sched_getaffinity(0, sizeof(mask), &mask), 0);
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &mask)) ++first;
  ASSERT_LT(first, CPU_SETSIZE);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (::sched_setaffinity(0, sizeof(one), &one) != 0) ::_exit(2);
    ::_exit(available_cpus() == 1 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace svmoe
