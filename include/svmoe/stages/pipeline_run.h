// svmoe run's execution: the planned steps in order, each as its subcommand runs it, with the
// markers written around it (pipeline_plan.h).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "svmoe/config/settings.h"
#include "svmoe/stages/pipeline_plan.h"

namespace svmoe {

struct PipelineOptions {
  std::int64_t expert = -1;  // with --only experts: train this one expert (a Slurm array task)
};

struct PipelineResult {
  std::vector<std::string> ran;  // steps run (to the end) by this call
  bool interrupted = false;      // a training step stopped for a signal after checkpointing
};

PipelineResult run_pipeline(const std::vector<PlannedStep>& plan, const std::filesystem::path& dir,
                            const RuntimeSettings& runtime, const PipelineOptions& options = {});

}  // namespace svmoe
