#include "svmoe/io/metrics_log.h"

#include <gtest/gtest.h>

#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

std::vector<std::pair<std::string, double>> tags_and_values(const std::vector<TensorBoardScalar>& scalars) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& s : scalars) out.emplace_back(s.tag, s.value);
  return out;
}

// A logging line as the trainer writes one for an MoE (train/objectives.h), and a validation line.
Json train_line(std::int64_t step) {
  const double x = static_cast<double>(step);
  return {{"step", step},
          {"loss", 3.0 / x},
          {"lr", 1e-3 * x},
          {"grad_norm", 0.5 + x},
          {"routing",
           {{"expert_fraction", {{0.25, 0.75}, {0.5 + 0.01 * x, 0.5 - 0.01 * x}}},
            {"router_entropy", {0.6, 0.7}},
            {"max_min_load_ratio", {3.0, nullptr}}}}};
}
Json valid_line(std::int64_t step) { return {{"step", step}, {"valid_loss", 2.5}, {"valid_ppl", 12.18}}; }

}  // namespace

// The tags say where a number sits in the line: train/ or valid/ at the top, the object's name
// for nested numbers, one tag per layer and per layer and expert for lists.
TEST(MetricsLog, TensorBoardTagsFollowTheLinesShape) {
  Json line = train_line(2);
  line["time"] = 1.5;
  line["note"] = "not a number";
  const auto scalars = tags_and_values(tensorboard_scalars(line));
  const std::vector<std::pair<std::string, double>> expected = {
      {"train/grad_norm", 2.5},
      {"train/loss", 1.5},
      {"train/lr", 2e-3},
      {"routing/expert_fraction/layer_0/expert_0", 0.25},
      {"routing/expert_fraction/layer_0/expert_1", 0.75},
      {"routing/expert_fraction/layer_1/expert_0", 0.52},
      {"routing/expert_fraction/layer_1/expert_1", 0.48},
      {"routing/max_min_load_ratio/layer_0", 3.0},  // layer 1's unbounded ratio (null) is left out
      {"routing/router_entropy/layer_0", 0.6},
      {"routing/router_entropy/layer_1", 0.7}};
  EXPECT_EQ(scalars, expected);
  EXPECT_EQ(tags_and_values(tensorboard_scalars(valid_line(4))),
            (std::vector<std::pair<std::string, double>>{{"valid/loss", 2.5}, {"valid/ppl", 12.18}}));
}

// A run that goes on after step 2 redoes steps 3 and 4: both records keep only what it will not
// redo, and there is one event file; with TensorBoard off, no event file is left to disagree.
TEST(MetricsLog, AResumeDropsTheStepsItRedoesFromBothRecords) {
  test::ScratchDir dir;
  fs::create_directories(dir / "run");
  const RunDirectory run(dir / "run");
  {
    MetricsLog log(run, 0, true);
    for (std::int64_t step = 1; step <= 4; ++step) log.append(train_line(step));
  }
  ASSERT_EQ(run.tensorboard_event_files().size(), 1u);
  {
    MetricsLog log(run, 2, true);
    log.append(train_line(3));
  }
  const auto lines = run.read_metrics();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_EQ(lines[2]["step"], 3);
  EXPECT_TRUE(lines[2]["time"].is_number());
  EXPECT_EQ(run.tensorboard_event_files().size(), 1u);
  { MetricsLog log(run, 3, false); }
  EXPECT_TRUE(run.tensorboard_event_files().empty());
  EXPECT_EQ(run.read_metrics().size(), 3u);
}

// The independent reader (npm tfrecord + protobufjs, scripts/reference/tensorboard-events.sh)
// finds in the one event file the version record, then one event per metrics.jsonl line with its
// step, its time and every scalar as float32, across a resume.
TEST(TensorBoardReference, TfrecordReadsBackEveryScalarAcrossAResume) {
  test::ScratchDir dir;
  fs::create_directories(dir / "run");
  const RunDirectory run(dir / "run");
  {
    MetricsLog log(run, 0, true);
    for (std::int64_t step = 1; step <= 3; ++step) log.append(train_line(step));
    log.append(valid_line(3));
    log.append(train_line(4));
  }
  {
    MetricsLog log(run, 3, true);  // resumed from checkpoint-3: step 4 is redone
    log.append(train_line(4));
    log.append(valid_line(4));
  }
  const auto files = run.tensorboard_event_files();
  ASSERT_EQ(files.size(), 1u);
  const Json read = test::tensorboard_reference(files);
  ASSERT_EQ(read.size(), 1u);
  const Json& events = read[0]["events"];
  const auto lines = run.read_metrics();
  ASSERT_EQ(lines.size(), 6u);
  ASSERT_EQ(events.size(), lines.size() + 1);
  EXPECT_EQ(events[0]["file_version"].get<std::string>(), "brain.Event:2");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Json& event = events[i + 1];
    SCOPED_TRACE("metrics line " + lines[i].dump());
    EXPECT_EQ(event["step"], lines[i]["step"]);
    EXPECT_EQ(event["wall_time"].get<double>(), lines[i]["time"].get<double>());
    const auto expected = tensorboard_scalars(lines[i]);
    ASSERT_EQ(event["values"].size(), expected.size());
    for (std::size_t v = 0; v < expected.size(); ++v) {
      EXPECT_EQ(event["values"][v]["tag"].get<std::string>(), expected[v].tag);
      EXPECT_EQ(event["values"][v]["simple_value"].get<double>(),
                static_cast<double>(static_cast<float>(expected[v].value)));
    }
  }
  // By hand, a value the reader found where the line has it: step 4's layer-1 share of expert 0.
  EXPECT_EQ(events[5]["values"][5]["tag"].get<std::string>(), "routing/expert_fraction/layer_1/expert_0");
  EXPECT_EQ(events[5]["values"][5]["simple_value"].get<double>(), static_cast<double>(0.54f));
}

}  // namespace svmoe
