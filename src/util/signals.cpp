#include "svmoe/util/signals.h"

#include <atomic>
#include <csignal>

namespace svmoe {
namespace {
std::atomic<int> requested_signal{0};  // set from a signal handler: a lock-free atomic

extern "C" void on_stop_signal(int signal) { requested_signal.store(signal); }
}  // namespace

// SIGTERM (Slurm's end of time, docker stop), SIGUSR1 (Slurm's --signal before a requeue) and
// SIGINT (Ctrl-C) all ask for the same thing: finish the step, write a checkpoint, exit 75.
// The handler only records the signal; the training loop polls stop_requested().
void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
}

bool stop_requested() { return requested_signal.load() != 0; }
int stop_signal() { return requested_signal.load(); }

}  // namespace svmoe
