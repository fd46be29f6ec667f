#include "svmoe/util/cpus.h"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace svmoe {

unsigned available_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (::sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    const int count = CPU_COUNT(&mask);
    if (count > 0) return static_cast<unsigned>(count);
  }
  // No mask (or more CPUs than a cpu_set_t holds): every CPU the machine has.
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace svmoe
