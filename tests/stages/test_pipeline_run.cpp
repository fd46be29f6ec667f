#include "svmoe/io/experiment_directory.h"
#include "svmoe/stages/pipeline_run.h"

#include <gtest/gtest.h>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

ConfigTree prepare_only_experiment(const fs::path& dir) {
  return test::pipeline_experiment(
      dir, {"prepare.corpus=" + test::example_ci_corpus().string(),
            "prepare.tokenizer=" + (test::data_dir() / "tokenizers" / "unigram").string(), "runtime.device=cpu"});
}

}  // namespace

TEST(RunPipeline, RunsTheSelectedStepWritesItsMarkerAndThenHasNothingToDo) {
  test::ScratchDir dir;
  const ConfigTree config = prepare_only_experiment(dir.path());
  const auto steps = pipeline_steps(config);
  const RuntimeSettings runtime = parse_runtime_settings(config);
  const PipelineResult first = run_pipeline(plan_pipeline(steps, dir.path(), {{"prepare"}, ""}), dir.path(), runtime);
  EXPECT_EQ(first.ran, std::vector<std::string>{"prepare"});
  EXPECT_FALSE(first.interrupted);
  const Json marker = Json::parse(read_text_file(ExperimentDirectory(dir.path()).step_marker("prepare")));
  EXPECT_EQ(marker["state"], "done");
  EXPECT_EQ(marker["stage"], "prepare");
  EXPECT_TRUE(fs::exists(dir / "dataset" / "manifest.json"));
  const PipelineResult again = run_pipeline(plan_pipeline(steps, dir.path(), {{"prepare"}, ""}), dir.path(), runtime);
  EXPECT_TRUE(again.ran.empty());
}

TEST(RunPipeline, AnExpertIndexIsOnlyForTheExpertsStep) {
  test::ScratchDir dir;
  const ConfigTree config = prepare_only_experiment(dir.path());
  const auto steps = pipeline_steps(config);
  const std::string message = test::error_message<UsageError>([&] {
    run_pipeline(plan_pipeline(steps, dir.path(), {{"prepare"}, ""}), dir.path(), parse_runtime_settings(config), {0});
  });
  EXPECT_NE(message.find("--expert 0 is for the experts step alone"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "dataset"));
}

}  // namespace svmoe
