// Graceful stops: SIGTERM and SIGUSR1 (what Slurm sends before preemption or the time limit)
// and SIGINT set a flag that the training loop checks after each step: it then saves a
// checkpoint and exits with kExitRequeue. The flag is process-wide, as signals are.
#pragma once

namespace svmoe {

// The exit code of a run stopped by a signal after checkpointing (EX_TEMPFAIL): the Slurm
// scripts requeue the job on it.
inline constexpr int kExitRequeue = 75;

void install_stop_handlers();
bool stop_requested();
int stop_signal();  // the signal that asked, or 0

}  // namespace svmoe
