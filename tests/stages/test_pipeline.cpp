#include "svmoe/stages/pipeline.h"

#include <gtest/gtest.h>

#include <map>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// An experiment as a user writes it: sections without paths, `run` naming the directory.
ConfigTree experiment(const fs::path& dir, const std::vector<std::string>& overrides = {}) {
  ConfigTree config(default_config());
  config.merge(Json::parse(R"({
    "run": {"base_model": ")" +
                           test::model_fixture("llama_mha_untied").string() + R"(",
            "pretrain_base": {"enabled": true, "train": {"steps": 20}}},
    "prepare": {"corpus": ["corpus.jsonl"], "num_subdomains": 3},
    "train": {"steps": 50, "learning_rate": 0.003},
    "train_experts": {"train": {"steps": 10}},
    "train_router": {"train": {"learning_rate": 0.01}},
    "finetune": {"train": {"steps": 10}}
  })"),
               "test");
  config.set("run.dir", dir.string(), "test");
  for (const auto& assignment : overrides) config.apply_override(assignment);
  return config;
}

std::map<std::string, std::string> hashes(const std::vector<PipelineStep>& steps) {
  std::map<std::string, std::string> out;
  for (const auto& step : steps) out[step.name] = step.hash;
  return out;
}

// The steps whose hash differs between two configs.
std::vector<std::string> changed_steps(const std::vector<PipelineStep>& a, const std::vector<PipelineStep>& b) {
  const auto hb = hashes(b);
  std::vector<std::string> changed;
  for (const auto& step : a) {
    if (hb.at(step.name) != step.hash) changed.push_back(step.name);
  }
  return changed;
}

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
      step_marker_path(dir, step.name),
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

TEST(PipelineSteps, TheRecipeInOrderWithTheLayoutsPaths) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(experiment(dir.path()));
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"prepare", "base", "experts", "merge", "router", "dense", "btx", "btx_lb",
                                             "svmoe", "svmoe_lb", "eval", "report"}));
  const auto& experts = steps[2];
  EXPECT_EQ(experts.tasks, 3);
  EXPECT_EQ(experts.needs, (std::vector<std::string>{"prepare", "base"}));
  EXPECT_EQ(steps[3].config.at("merge.experts").size(), 3u);
  EXPECT_EQ(steps[3].config.at("merge.experts")[2], (dir.path() / "experts" / "expert_2").string());
  // Each model from what the paper fine-tunes: Dense from the base, BTX from the merge, SvMoE from the router.
  EXPECT_EQ(steps[5].config.at("finetune.model"), (dir.path() / "base" / "final").string());
  EXPECT_EQ(steps[6].config.at("finetune.model"), (dir.path() / "moe").string());
  EXPECT_EQ(steps[8].config.at("finetune.model"), (dir.path() / "router" / "final").string());
  EXPECT_EQ(steps[7].config.at("finetune.load_balancing.method"), "switch");
  EXPECT_EQ(steps[9].config.at("finetune.load_balancing.method"), "switch");
  EXPECT_EQ(steps[8].config.at("finetune.load_balancing.method"), "none");
  // The pretraining's own steps, the experts' own, stage 4's own.
  EXPECT_EQ(parse_train_settings(steps[1].config, steps[1].train_section).steps, 20);
  EXPECT_EQ(parse_train_settings(steps[2].config, steps[2].train_section).steps, 10);
  EXPECT_EQ(parse_train_settings(steps[4].config, steps[4].train_section).steps, 50);
  EXPECT_EQ(parse_train_settings(steps[6].config, steps[6].train_section).steps, 10);
  const auto eval = parse_eval_settings(steps[10].config);
  ASSERT_EQ(eval.models.size(), 5u);
  EXPECT_EQ(eval.models[2].name, "BTX");
  EXPECT_EQ(eval.models[2].lb, "yes");
  EXPECT_EQ(eval.models[0].lb, "-");
}

TEST(PipelineSteps, AStepsHashChangesWithItsSettingsAndInputsOnly) {
  test::ScratchDir dir;
  const auto base = pipeline_steps(experiment(dir.path()));
  EXPECT_TRUE(changed_steps(base, pipeline_steps(experiment(dir.path()))).empty());
  // One fine-tuning key: the five models and what reads them.
  EXPECT_EQ(changed_steps(base, pipeline_steps(experiment(dir.path(), {"finetune.train.learning_rate=1e-3"}))),
            (std::vector<std::string>{"dense", "btx", "btx_lb", "svmoe", "svmoe_lb", "eval", "report"}));
  // The LB coefficient: only the +LB models.
  EXPECT_EQ(changed_steps(base, pipeline_steps(experiment(dir.path(), {"finetune.load_balancing.alpha=0.1"}))),
            (std::vector<std::string>{"btx_lb", "svmoe_lb", "eval", "report"}));
  // The router's training: the router and the SvMoE models.
  EXPECT_EQ(changed_steps(base, pipeline_steps(experiment(dir.path(), {"train_router.train.steps=7"}))),
            (std::vector<std::string>{"router", "svmoe", "svmoe_lb", "eval", "report"}));
  // The shared `train` key that the experts and stage 4 override, but the router does not.
  EXPECT_EQ(changed_steps(base, pipeline_steps(experiment(dir.path(), {"train.steps=60"}))),
            (std::vector<std::string>{"router", "svmoe", "svmoe_lb", "eval", "report"}));
  // The corpus: everything.
  EXPECT_EQ(changed_steps(base, pipeline_steps(experiment(dir.path(), {"prepare.num_subdomains=2"}))).size(),
            base.size());
  // What does not change a result: logging, checkpoints, the device, the directory itself.
  EXPECT_TRUE(changed_steps(base, pipeline_steps(experiment(
                                      dir.path(), {"train.log_every=1", "train.save_every=5", "runtime.device=cpu"})))
                  .empty());
  EXPECT_TRUE(changed_steps(base, pipeline_steps(experiment(dir.path() / "elsewhere"))).empty());
}

TEST(PipelineSteps, OnlyTheModelsAskedForAndNoRouterWithoutSvMoE) {
  test::ScratchDir dir;
  const auto steps =
      pipeline_steps(experiment(dir.path(), {"run.models=[dense, btx_lb]", "run.pretrain_base.enabled=false"}));
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"prepare", "experts", "merge", "dense", "btx_lb", "eval", "report"}));
  // A given base model: the experts and Dense start from it, and prepare uses its tokenizer.
  EXPECT_EQ(steps[1].config.at("train_experts.base_model"), test::model_fixture("llama_mha_untied").string());
  EXPECT_EQ(steps[0].config.at("prepare.tokenizer"), test::model_fixture("llama_mha_untied").string());
  const std::string message =
      test::error_message<ConfigError>([&] { pipeline_steps(experiment(dir.path(), {"run.models=[dense, moe]"})); });
  EXPECT_NE(message.find("run.models"), std::string::npos) << message;
  EXPECT_NE(message.find("'moe'"), std::string::npos) << message;
}

TEST(PlanPipeline, SkipsWhatIsDoneResumesWhatStartedRerunsWhatChanged) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(experiment(dir.path()));
  auto plan = plan_pipeline(steps, dir.path(), {});
  for (const auto& p : plan) EXPECT_EQ(p.action, StepAction::kRun) << p.step->name;

  for (const auto& step : steps) mark(dir.path(), step, steps, step.name == "report" ? "started" : "done");
  plan = plan_pipeline(steps, dir.path(), {});
  for (const auto& p : plan) {
    EXPECT_EQ(p.action, p.step->name == "report" ? StepAction::kResume : StepAction::kSkip) << p.step->name;
  }

  // A changed fine-tuning key: the models say which key changed; eval and report follow.
  const auto changed = pipeline_steps(experiment(dir.path(), {"finetune.train.learning_rate=1e-3"}));
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
  EXPECT_FALSE(fs::exists(step_marker_path(dir.path(), "btx")));
  EXPECT_TRUE(fs::exists(dir / "moe" / "written"));
  EXPECT_TRUE(fs::exists(step_marker_path(dir.path(), "merge")));
}

TEST(PlanPipeline, FromRerunsAStepAndEverythingAfterIt) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(experiment(dir.path()));
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
  const auto steps = pipeline_steps(experiment(dir.path()));
  // Nothing is done: fine-tuning alone cannot run.
  std::string message = test::error_message<UsageError>([&] { plan_pipeline(steps, dir.path(), {{"finetune"}, ""}); });
  EXPECT_NE(message.find("needs"), std::string::npos) << message;
  // Everything up to the router is done: the stage's five steps run, nothing else.
  for (const auto& step : steps) {
    if (step.stage != "finetune" || step.name == "base") mark(dir.path(), step, steps);
  }
  fs::remove(step_marker_path(dir.path(), "eval"));
  fs::remove_all(dir / "eval");
  fs::remove(step_marker_path(dir.path(), "report"));
  const auto plan = plan_pipeline(steps, dir.path(), {{"finetune"}, ""});
  for (const auto& p : plan) {
    const bool model = p.step->stage == "finetune" && p.step->name != "base";
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
  const auto steps = pipeline_steps(experiment(dir.path()));
  fs::create_directories(dir / "moe");
  test::write_text(dir / "moe" / "model.safetensors", "someone's");
  const std::string message = test::error_message<ConfigError>([&] { plan_pipeline(steps, dir.path(), {}); });
  EXPECT_NE(message.find((dir / "moe").string()), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(dir / "moe" / "model.safetensors"));
}

TEST(PlanPipeline, TheTsvPlanScriptsRead) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(experiment(dir.path()));
  const std::string tsv = plan_tsv(plan_pipeline(steps, dir.path(), {}));
  EXPECT_NE(tsv.find("experts\ttrain-experts\trun\t3\tprepare,base\t" + (dir / "experts").string() + "\n"),
            std::string::npos)
      << tsv;
  EXPECT_NE(tsv.find("prepare\tprepare\trun\t1\t-\t"), std::string::npos) << tsv;
}

}  // namespace svmoe
