#include "svmoe/stages/pipeline_plan.h"

#include <gtest/gtest.h>

#include <map>

#include "svmoe/io/experiment_directory.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// Writes the marker a finished (or started) step leaves, as svmoe run does.
void mark(const fs::path& dir, const PipelineStep& step, const std::vector<PipelineStep>& steps,
          const std::string& state = "done") {
  Json inputs = Json::object();
  for (const auto& need : step.needs) {
    for (const auto& s : steps) {
      if (s.name == need) inputs[need] = s.hash;
    }
  }
  fs::create_directories(dir / "pipeline");
  write_file_atomically(
      ExperimentDirectory(dir).step_marker(step.name),
      Json{{"state", state}, {"hash", step.hash}, {"settings", step.settings}, {"inputs", inputs}}.dump());
  fs::create_directories(step.output);
  test::write_text(step.output / "written", "x");
}

std::map<std::string, std::string> actions(const std::vector<PlannedStep>& plan) {
  std::map<std::string, std::string> out;
  for (const auto& p : plan) out[p.step->name] = step_action_name(p.action);
  return out;
}

const PlannedStep& planned(const std::vector<PlannedStep>& plan, const std::string& name) {
  for (const auto& p : plan) {
    if (p.step->name == name) return p;
  }
  throw std::runtime_error("no step " + name);
}

}  // namespace

TEST(PlanPipeline, SkipsWhatIsDoneResumesWhatStartedRerunsWhatChanged) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  auto plan = plan_pipeline(steps, dir.path(), {});
  for (const auto& p : plan) EXPECT_EQ(p.action, StepAction::kRun) << p.step->name;

  for (const auto& step : steps) mark(dir.path(), step, steps, step.name == "report" ? "started" : "done");
  plan = plan_pipeline(steps, dir.path(), {});
  for (const auto& p : plan) {
    EXPECT_EQ(p.action, p.step->name == "report" ? StepAction::kResume : StepAction::kSkip) << p.step->name;
  }

  // A changed fine-tuning key: the models say which key changed; eval and report follow.
  const auto changed = pipeline_steps(test::pipeline_experiment(dir.path(), {"finetune.train.learning_rate=1e-3"}));
  plan = plan_pipeline(changed, dir.path(), {});
  EXPECT_EQ(actions(plan), (std::map<std::string, std::string>{{"prepare", "done"},
                                                               {"base", "done"},
                                                               {"experts", "done"},
                                                               {"merge", "done"},
                                                               {"router", "done"},
                                                               {"dense", "rerun"},
                                                               {"btx", "rerun"},
                                                               {"btx_lb", "rerun"},
                                                               {"svmoe", "rerun"},
                                                               {"svmoe_lb", "rerun"},
                                                               {"eval", "rerun"},
                                                               {"report", "rerun"}}));
  EXPECT_NE(planned(plan, "btx").reason.find("train.learning_rate: 0.003 -> 0.001"), std::string::npos)
      << planned(plan, "btx").reason;
  EXPECT_NE(planned(plan, "eval").reason.find("input changed"), std::string::npos) << planned(plan, "eval").reason;

  // Resetting removes exactly the outputs that are re-run.
  reset_changed_steps(plan, dir.path());
  EXPECT_FALSE(fs::exists(dir / "models" / "btx"));
  EXPECT_FALSE(fs::exists(ExperimentDirectory(dir.path()).step_marker("btx")));
  EXPECT_TRUE(fs::exists(dir / "moe" / "written"));
  EXPECT_TRUE(fs::exists(ExperimentDirectory(dir.path()).step_marker("merge")));
}

TEST(PlanPipeline, FromRerunsAStepAndEverythingAfterIt) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  for (const auto& step : steps) mark(dir.path(), step, steps);
  const auto plan = plan_pipeline(steps, dir.path(), {{}, "router"});
  for (const auto& p : plan) {
    const bool after = p.step->name == "router" || p.step->name == "svmoe" || p.step->name == "svmoe_lb" ||
                       p.step->name == "eval" || p.step->name == "report" || p.step->name == "dense" ||
                       p.step->name == "btx" || p.step->name == "btx_lb";
    EXPECT_EQ(p.action, after ? StepAction::kRerun : StepAction::kSkip) << p.step->name;
  }
}

TEST(PlanPipeline, OnlyRunsSelectedStepsWhoseInputsAreDone) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  // Nothing is done: fine-tuning alone cannot run.
  std::string message = test::error_message<UsageError>([&] { plan_pipeline(steps, dir.path(), {{"finetune"}, ""}); });
  EXPECT_NE(message.find("needs"), std::string::npos) << message;
  // Everything up to the router is done: the stage's five steps run, nothing else.
  for (const auto& step : steps) {
    if (step.stage != Stage::kFinetune || step.name == "base") mark(dir.path(), step, steps);
  }
  fs::remove(ExperimentDirectory(dir.path()).step_marker("eval"));
  fs::remove_all(dir / "eval");
  fs::remove(ExperimentDirectory(dir.path()).step_marker("report"));
  const auto plan = plan_pipeline(steps, dir.path(), {{"finetune"}, ""});
  for (const auto& p : plan) {
    const bool model = p.step->stage == Stage::kFinetune && p.step->name != "base";
    const bool pending = p.step->name == "eval" || p.step->name == "report";
    EXPECT_EQ(p.action, model     ? StepAction::kRun
                        : pending ? StepAction::kNotSelected
                                  : StepAction::kSkip)
        << p.step->name;
  }
  message = test::error_message<UsageError>([&] { plan_pipeline(steps, dir.path(), {{"finetuning"}, ""}); });
  EXPECT_NE(message.find("finetuning"), std::string::npos) << message;
}

TEST(PlanPipeline, NeverTouchesAnOutputItDidNotWrite) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  fs::create_directories(dir / "moe");
  test::write_text(dir / "moe" / "model.safetensors", "someone's");
  const std::string message = test::error_message<ConfigError>([&] { plan_pipeline(steps, dir.path(), {}); });
  EXPECT_NE(message.find((dir / "moe").string()), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(dir / "moe" / "model.safetensors"));
}

// Marks every step done as svmoe run does, after giving each output a config.json and, for the
// trained models, a large weight file (recorded by size only).
void finish_every_step(const fs::path& dir, const std::vector<PipelineStep>& steps) {
  for (const auto& step : steps) {
    if (step.name == "report") {
      test::write_text(step.output, "<html>");
    } else {
      fs::create_directories(step.output);
      test::write_text(step.output / "config.json", "{\"name\": \"" + step.name + "\"}");
      test::write_text(step.output / "model.safetensors", std::string(kHashedFileLimit + 1, 'w'));
    }
    std::vector<const PipelineStep*> needs;
    for (const auto& need : step.needs) {
      for (const auto& s : steps) {
        if (s.name == need) needs.push_back(&s);
      }
    }
    write_step_marker(dir, step, needs, StepState::kStarted);
    write_step_marker(dir, step, needs, StepState::kDone);
  }
}

TEST(PlanPipeline, AMissingOrChangedOutputRunsItsStepAgainWithTheReason) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  finish_every_step(dir.path(), steps);
  for (const auto& p : plan_pipeline(steps, dir.path(), {})) EXPECT_EQ(p.action, StepAction::kSkip) << p.step->name;

  // Files added to an output are not a change (the report writes into eval/).
  test::write_text(dir / "eval" / "notes.txt", "mine");
  for (const auto& p : plan_pipeline(steps, dir.path(), {})) EXPECT_EQ(p.action, StepAction::kSkip) << p.step->name;

  // The router deleted, to free space: it and everything it feeds run again, and say why.
  const fs::path router = planned(plan_pipeline(steps, dir.path(), {}), "router").step->output;
  fs::remove_all(router);
  auto plan = plan_pipeline(steps, dir.path(), {});
  EXPECT_EQ(planned(plan, "router").action, StepAction::kRerun);
  EXPECT_EQ(planned(plan, "router").reason, "output missing: " + router.string());
  EXPECT_EQ(planned(plan, "svmoe").action, StepAction::kRerun);
  EXPECT_EQ(planned(plan, "btx").action, StepAction::kSkip);
  EXPECT_EQ(planned(plan, "report").action, StepAction::kRerun);
  EXPECT_NE(plan_text(plan).find("output missing"), std::string::npos) << plan_text(plan);
  finish_every_step(dir.path(), steps);

  // One file of an output gone, a small file edited, a large file truncated.
  fs::remove(dir / "moe" / "config.json");
  plan = plan_pipeline(steps, dir.path(), {});
  EXPECT_EQ(planned(plan, "merge").reason, "output missing: " + (dir / "moe" / "config.json").string());
  finish_every_step(dir.path(), steps);
  test::write_text(dir / "moe" / "config.json", "{\"name\": \"edited\"}");
  plan = plan_pipeline(steps, dir.path(), {});
  EXPECT_EQ(planned(plan, "merge").reason,
            "output changed since it was written: " + (dir / "moe" / "config.json").string());
  finish_every_step(dir.path(), steps);
  fs::resize_file(dir / "models" / "btx" / "model.safetensors", 10);
  plan = plan_pipeline(steps, dir.path(), {});
  EXPECT_EQ(planned(plan, "btx").action, StepAction::kRerun);
  EXPECT_EQ(planned(plan, "btx_lb").action, StepAction::kSkip);
  EXPECT_NE(planned(plan, "btx").reason.find("output changed"), std::string::npos);
  EXPECT_EQ(planned(plan, "eval").action, StepAction::kRerun);  // its input runs again

  // Resetting removes the changed output before the step runs again.
  reset_changed_steps(plan, dir.path());
  EXPECT_FALSE(fs::exists(dir / "models" / "btx"));
}

TEST(PlanPipeline, TheFingerprintHashesSmallFilesOnlyAndLeavesLocksAndLogsOut) {
  test::ScratchDir dir;
  fs::create_directories(dir / "out" / "sub");
  test::write_text(dir / "out" / "config.json", "{}");
  test::write_text(dir / "out" / "sub" / "index.json", "[]");
  test::write_text(dir / "out" / "weights.bin", std::string(kHashedFileLimit + 1, 'w'));
  test::write_text(dir / "out" / "train.log", "a line");
  test::write_text(dir / "out" / "expert_0.lock", "");
  const Json fingerprint = output_fingerprint(dir / "out");
  EXPECT_EQ(fingerprint.size(), 3u) << fingerprint.dump();
  EXPECT_EQ(fingerprint.at("config.json").at("sha256").get<std::string>(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(fingerprint.at("sub/index.json").at("size").get<int>(), 2);
  EXPECT_FALSE(fingerprint.at("weights.bin").contains("sha256"));
  test::write_text(dir / "out" / "train.log", "another line");
  EXPECT_EQ(output_difference(dir / "out", fingerprint), "");
  // A file output is fingerprinted as ".".
  test::write_text(dir / "report.html", "<html>");
  EXPECT_EQ(output_fingerprint(dir / "report.html").begin().key(), ".");
}

TEST(PlanPipeline, TheTsvPlanScriptsRead) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  const std::string tsv = plan_tsv(plan_pipeline(steps, dir.path(), {}));
  EXPECT_NE(tsv.find("experts\ttrain-experts\trun\t3\tprepare,base\t" + (dir / "experts").string() + "\n"),
            std::string::npos)
      << tsv;
  EXPECT_NE(tsv.find("prepare\tprepare\trun\t1\t-\t"), std::string::npos) << tsv;
}

}  // namespace svmoe
