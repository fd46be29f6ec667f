// The step hashes of the bundled configs, as svmoe run computed them before the typed pipeline
// (commit 2d08014, where each step's settings were read from a rewritten config tree). An
// experiment directory made then keeps its finished steps only while these stay the same
// (docs/pipeline.md, "Step hashes"); tests/data/pipeline/step_hashes.json holds them, written by
// this test with SVMOE_RECORD_STEP_HASHES=1 at that commit.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "svmoe/stages/pipeline.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

struct BundledExperiment {
  std::string name;
  std::vector<std::string> files;      // under configs/, merged in order
  std::vector<std::string> overrides;  // key=value, after the files
};

// The bundled configs, each with a base model that is in the repository (the quickstart's
// overlays name runs/quickstart/base/final, which a run makes; the paper's a local download).
std::vector<BundledExperiment> bundled_experiments() {
  const std::string given_base = "run.base_model=configs/quickstart/base_model";
  return {
      {"quickstart", {"quickstart/experiment.yaml"}, {}},
      {"quickstart+upcycling", {"quickstart/experiment.yaml", "quickstart/upcycling.yaml"}, {}},
      {"quickstart+cartesian", {"quickstart/experiment.yaml", "quickstart/cartesian.yaml"}, {given_base}},
      {"quickstart+shared", {"quickstart/experiment.yaml", "quickstart/shared.yaml"}, {given_base}},
      {"quickstart+soft", {"quickstart/experiment.yaml", "quickstart/soft.yaml"}, {given_base}},
      {"fortunes-de", {"quickstart/experiment.yaml", "quickstart/fortunes-de.yaml"}, {}},
      {"quickstart+btm-pairs",
       {"quickstart/experiment.yaml"},
       {"run.btm_ensemble=true", "run.btm_coverage=pairs", "eval.btm.weighting=distance"}},
      {"quickstart+aux-free", {"quickstart/experiment.yaml"}, {"run.lb_method=aux_free", "finetune.train.steps=7"}},
      {"paper", {"paper/llm-jp-3-1.8b.yaml"}, {given_base, "prepare.tokenizer=configs/quickstart/base_model"}},
  };
}

// {experiment: {step: hash}}, computed with the repository as the working directory (the
// configs' relative paths are part of what is hashed, as they are in a run).
Json bundled_step_hashes() {
  const fs::path previous = fs::current_path();
  fs::current_path(SVMOE_SOURCE_DIR);
  Json out = Json::object();
  for (const auto& experiment : bundled_experiments()) {
    ConfigTree config(default_config());
    for (const auto& file : experiment.files) config.merge_file(fs::path("configs") / file);
    for (const auto& assignment : experiment.overrides) config.apply_override(assignment);
    Json steps = Json::object();
    for (const auto& step : pipeline_steps(config)) steps[step.name] = step.hash;
    out[experiment.name] = steps;
  }
  fs::current_path(previous);
  return out;
}

}  // namespace

TEST(PipelineHashes, TheBundledConfigsKeepTheStepHashesOfTheConfigTreePipeline) {
  const fs::path file = test::data_dir() / "pipeline" / "step_hashes.json";
  const Json actual = bundled_step_hashes();
  if (std::getenv("SVMOE_RECORD_STEP_HASHES") != nullptr) {
    write_file_atomically(file, actual.dump(2) + "\n");
    GTEST_SKIP() << "recorded " << file;
  }
  const Json expected = Json::parse(read_text_file(file));
  ASSERT_EQ(expected.size(), actual.size());
  for (auto experiment = expected.begin(); experiment != expected.end(); ++experiment) {
    ASSERT_TRUE(actual.contains(experiment.key())) << experiment.key();
    for (auto step = experiment->begin(); step != experiment->end(); ++step) {
      EXPECT_EQ(actual[experiment.key()].value(step.key(), std::string("(no such step)")),
                step.value().get<std::string>())
          << experiment.key() << ": step " << step.key();
    }
    EXPECT_EQ(actual[experiment.key()].size(), experiment->size()) << experiment.key();
  }
}

}  // namespace svmoe
