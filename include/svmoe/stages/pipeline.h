// svmoe run: the recipe (SPEC.md §2-§5) as one pipeline of steps in one experiment directory.
// prepare -> [base] -> experts -> merge -> router, then stage 4's models (dense from the base,
// btx* from the merged MoE, svmoe* from the router's), then eval and report. Models built by
// another merge method (run.models: naive, drop_upcycling_svmoe_lb, ...) add their own merge_M
// and router_M steps; the experts step runs only where a model or the BTM ensemble reads it.
//
// This file: the steps of an experiment, each with its stage's typed inputs, and their hashes
// (of the settings each step's result depends on, and of its inputs' hashes). pipeline_plan.h compares them with the
// markers of earlier runs; pipeline_run.h runs the plan.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/enums.h"
#include "svmoe/config/settings.h"
#include "svmoe/stages/stage.h"

namespace svmoe {

struct PipelineStep {
  std::string name;  // prepare, base, experts, pair_experts, merge[_M], router[_M], each run.models name, eval, report
  Stage stage = Stage::kPrepare;   // the subcommand it runs (stages/stage.h): stage_of(inputs)
  std::vector<std::string> needs;  // the steps whose outputs it reads
  std::filesystem::path output;    // what it writes (removed when it must run again from scratch)
  StageInputs inputs;              // its stage's settings, with the layout's paths
  Json settings = Json::object();  // {key path: value}: the settings its result depends on
  std::string hash;                // of `settings` and the needs' hashes
  std::int64_t tasks = 1;          // independent tasks (experts: one per subdomain, a Slurm array)
  bool trains_moe = false;         // its model is the merged MoE (router, btx*, svmoe*)

  bool is_training() const { return is_training_stage(stage); }
};

// The steps of the experiment `config` names (run.dir, run.models, ...), in an order that
// runs every step after its needs.
std::vector<PipelineStep> pipeline_steps(const ConfigTree& config);

}  // namespace svmoe
