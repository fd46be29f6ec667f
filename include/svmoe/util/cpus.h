// How many CPUs this process may run on: its affinity mask (sched_getaffinity), which Slurm
// (--cpus-per-task), taskset and cgroup cpusets narrow, where std::thread::hardware_concurrency()
// counts every CPU of the node. Thread counts left at 0 ("all") use this.
#pragma once

namespace svmoe {

unsigned available_cpus();

}  // namespace svmoe
