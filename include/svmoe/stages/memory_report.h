// svmoe plan: the GPU memory each rank of each training step of `svmoe run` will need, before
// anything runs, and what to change where it does not fit (train/memory_plan.h; docs/training.md).
#pragma once

#include <string>

#include "svmoe/config/config_tree.h"

namespace svmoe {

struct GpuBudget {
  int world_size = 8;  // data-parallel GPUs of the fine-tuning steps; experts and router run on one each
  double gpu_memory_gb = 80;
  double usable = 0.9;  // the fraction svmoe may plan for (the rest: CUDA context, allocator slack, buffers)
};

// The plan as a table with one row per training step of the experiment, then a note for each
// step that does not fit, with what to change.
std::string memory_report(const ConfigTree& experiment, const GpuBudget& budget);

}  // namespace svmoe
