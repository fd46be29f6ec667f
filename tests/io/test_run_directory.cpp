#include "svmoe/io/run_directory.h"

#include <gtest/gtest.h>

#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

// The layout the trainer writes: checkpoints by step (a checkpoint without trainer_state.json is
// incomplete), other directories ignored.
TEST(RunDirectory, CheckpointsByStepAndTheNewestCompleteOne) {
  test::ScratchDir dir;
  const RunDirectory run(dir / "run");
  EXPECT_TRUE(run.checkpoints().empty());
  EXPECT_FALSE(run.latest_complete_checkpoint());
  for (const std::int64_t step : {20, 3, 100}) fs::create_directories(run.checkpoint(step));
  fs::create_directories(run.final_model());
  fs::create_directories(dir / "run" / "checkpoint-x");
  test::write_text(RunDirectory::trainer_state(run.checkpoint(3)), "{}");
  test::write_text(RunDirectory::trainer_state(run.checkpoint(20)), "{}");
  const auto all = run.checkpoints();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].first, 3);
  EXPECT_EQ(all[2].second, dir / "run" / "checkpoint-100");
  EXPECT_EQ(run.latest_complete_checkpoint(), run.checkpoint(20));  // 100 has no trainer state yet
  EXPECT_EQ(checkpoint_step(dir / "checkpoint-007"), 7);
  EXPECT_EQ(checkpoint_step(dir / "final"), -1);
}

TEST(RunDirectory, MetricsLinesInOrderWithoutACutLastLine) {
  test::ScratchDir dir;
  const RunDirectory run(dir.path());
  EXPECT_TRUE(run.read_metrics().empty());
  test::write_text(run.metrics(), "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, \"loss\": 2.25}\n{\"step\": 3, \"lo");
  const auto lines = run.read_metrics();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_DOUBLE_EQ(lines[1]["loss"].get<double>(), 2.25);
}

}  // namespace svmoe
