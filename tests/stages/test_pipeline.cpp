#include "svmoe/stages/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "svmoe/config/merge_method.h"
#include "svmoe/config/setting_table.h"
#include "svmoe/stages/stage.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> hashes(const std::vector<PipelineStep>& steps) {
  std::map<std::string, std::string> out;
  for (const auto& step : steps) out[step.name] = step.hash;
  return out;
}

// A step's stage settings, as its stage runs them.
const PrepareSettings& prepare_of(const PipelineStep& step) {
  return std::get<PrepareStageInputs>(step.inputs).prepare;
}
const TrainExpertsSettings& experts_of(const PipelineStep& step) {
  return std::get<TrainExpertsStageInputs>(step.inputs).train_experts;
}
const MergeSettings& merge_of(const PipelineStep& step) { return std::get<MergeStageInputs>(step.inputs).merge; }
const TrainRouterSettings& router_of(const PipelineStep& step) {
  return std::get<TrainRouterStageInputs>(step.inputs).train_router;
}
const FinetuneSettings& finetune_of(const PipelineStep& step) {
  return std::get<FinetuneStageInputs>(step.inputs).finetune;
}
const EvalSettings& eval_of(const PipelineStep& step) { return std::get<EvalStageInputs>(step.inputs).eval; }

// The steps whose hash differs between two configs.
std::vector<std::string> changed_steps(const std::vector<PipelineStep>& a, const std::vector<PipelineStep>& b) {
  const auto hb = hashes(b);
  std::vector<std::string> changed;
  for (const auto& step : a) {
    if (hb.at(step.name) != step.hash) changed.push_back(step.name);
  }
  return changed;
}

}  // namespace

TEST(PipelineSteps, TheRecipeInOrderWithTheLayoutsPaths) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(dir.path()));
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"prepare", "base", "experts", "merge", "router", "dense", "btx", "btx_lb",
                                             "svmoe", "svmoe_lb", "eval", "report"}));
  const auto& experts = steps[2];
  EXPECT_EQ(experts.tasks, 3);
  EXPECT_EQ(experts.needs, (std::vector<std::string>{"prepare", "base"}));
  EXPECT_EQ(merge_of(steps[3]).experts.size(), 3u);
  EXPECT_EQ(merge_of(steps[3]).experts[2], dir.path() / "experts" / "expert_2");
  // Each model from what the paper fine-tunes: Dense from the base, BTX from the merge, SvMoE from the router.
  EXPECT_EQ(finetune_of(steps[5]).model, dir.path() / "base" / "final");
  EXPECT_EQ(finetune_of(steps[6]).model, dir.path() / "moe");
  EXPECT_EQ(finetune_of(steps[8]).model, dir.path() / "router" / "final");
  EXPECT_EQ(finetune_of(steps[7]).load_balancing.method, LoadBalancingMethod::kSwitch);
  EXPECT_EQ(finetune_of(steps[9]).load_balancing.method, LoadBalancingMethod::kSwitch);
  EXPECT_EQ(finetune_of(steps[8]).load_balancing.method, LoadBalancingMethod::kNone);
  // The pretraining's own steps, the experts' own, stage 4's own.
  EXPECT_EQ(train_settings_of(steps[1].inputs)->steps, 20);
  EXPECT_EQ(train_settings_of(steps[2].inputs)->steps, 10);
  EXPECT_EQ(train_settings_of(steps[4].inputs)->steps, 50);
  EXPECT_EQ(train_settings_of(steps[6].inputs)->steps, 10);
  const auto eval = eval_of(steps[10]);
  ASSERT_EQ(eval.models.size(), 5u);
  EXPECT_EQ(eval.models[2].name, "BTX");
  EXPECT_EQ(eval.models[2].lb, "yes");
  EXPECT_EQ(eval.models[0].lb, "-");
}

TEST(PipelineSteps, AStepsHashChangesWithItsSettingsAndInputsOnly) {
  test::ScratchDir dir;
  const auto base = pipeline_steps(test::pipeline_experiment(dir.path()));
  EXPECT_TRUE(changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path()))).empty());
  // One fine-tuning key: the five models and what reads them.
  EXPECT_EQ(
      changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"finetune.train.learning_rate=1e-3"}))),
      (std::vector<std::string>{"dense", "btx", "btx_lb", "svmoe", "svmoe_lb", "eval", "report"}));
  // The LB coefficient: only the +LB models.
  EXPECT_EQ(
      changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"finetune.load_balancing.alpha=0.1"}))),
      (std::vector<std::string>{"btx_lb", "svmoe_lb", "eval", "report"}));
  // The router's training: the router and the SvMoE models.
  EXPECT_EQ(changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"train_router.train.steps=7"}))),
            (std::vector<std::string>{"router", "svmoe", "svmoe_lb", "eval", "report"}));
  // The shared `train` key that the experts and stage 4 override, but the router does not.
  EXPECT_EQ(changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"train.steps=60"}))),
            (std::vector<std::string>{"router", "svmoe", "svmoe_lb", "eval", "report"}));
  // The corpus: everything.
  EXPECT_EQ(
      changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"prepare.num_subdomains=2"}))).size(),
      base.size());
  // What does not change a result: logging, checkpoints, the device, the directory itself.
  EXPECT_TRUE(changed_steps(base, pipeline_steps(test::pipeline_experiment(
                                      dir.path(), {"train.log_every=1", "train.save_every=5", "runtime.device=cpu"})))
                  .empty());
  EXPECT_TRUE(changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path() / "elsewhere"))).empty());
}

namespace {

// Whether a step of `stage` reads the setting `key`: its own section, `train` if it trains, and
// the runtime's seed (every step draws with it).
bool step_reads(Stage stage, const std::string& key) {
  const std::string section = key.substr(0, key.find('.'));
  if (section == "runtime") return true;
  if (section == "train") return is_training_stage(stage);
  return section == settings_section(stage);
}

}  // namespace

// The law, for every row of the setting table rather than a hand list: a setting that changes
// numbers re-runs some step that reads it, and a step re-runs only if it reads the setting or
// an input of it re-runs; a setting that does not change numbers re-runs nothing.
TEST(PipelineSteps, EverySettingReRunsTheStepsThatReadItAndWhatFollowsOnly) {
  test::ScratchDir dir;
  // An experiment in which every setting is read by some step: merges that read each merge
  // parameter (noise, drop_upcycling) and the BTM ensemble's row in eval.
  const std::vector<std::string> experiment = {
      "run.models=[dense, btx, btx_lb, svmoe, svmoe_lb, noise, drop_upcycling]", "run.btm_ensemble=true"};
  const auto base = pipeline_steps(test::pipeline_experiment(dir.path(), experiment));
  int checked = 0;
  for (const auto& row : setting_table()) {
    const Json value = test::another_valid_value(row);
    // svmoe run sets the laid-out keys itself, and run.* keys shape the pipeline (which steps).
    // Sections no step reads (forward, generate, serve) are other subcommands'.
    if (value.is_null() || row.set_by_run || row.key.rfind("run.", 0) == 0) continue;
    if (std::none_of(base.begin(), base.end(), [&](const PipelineStep& s) { return step_reads(s.stage, row.key); })) {
      continue;
    }
    std::vector<PipelineStep> steps;
    try {
      std::vector<std::string> changed_experiment = experiment;
      changed_experiment.push_back(row.key + "=" + value.dump());
      steps = pipeline_steps(test::pipeline_experiment(dir.path(), changed_experiment));
    } catch (const ConfigError&) {
      // A value another key's rule refuses (the split fractions must sum to 1, a soft MoE has no
      // LB rows, ...): those rules have their own tests.
      continue;
    }
    ++checked;
    const std::vector<std::string> changed = changed_steps(base, steps);
    if (!row.affects_numbers) {
      EXPECT_TRUE(changed.empty()) << row.key << " changes no number but re-runs " << changed.front();
      continue;
    }
    EXPECT_FALSE(changed.empty()) << row.key << " changes numbers but re-runs nothing";
    std::set<std::string> rerun(changed.begin(), changed.end());
    for (const auto& step : steps) {
      if (rerun.count(step.name) == 0) continue;
      const bool input_reruns =
          std::any_of(step.needs.begin(), step.needs.end(), [&](const std::string& need) { return rerun.count(need); });
      EXPECT_TRUE(step_reads(step.stage, row.key) || input_reruns)
          << row.key << " re-runs " << step.name << ", which neither reads it nor has an input that re-runs";
    }
  }
  EXPECT_GT(checked, 75);  // 78 of the rows: the rest are refused by a rule between keys
}

TEST(PipelineSteps, OnlyTheModelsAskedForAndNoRouterWithoutSvMoE) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(
      test::pipeline_experiment(dir.path(), {"run.models=[dense, btx_lb]", "run.pretrain_base.enabled=false"}));
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"prepare", "experts", "merge", "dense", "btx_lb", "eval", "report"}));
  // A given base model: the experts and Dense start from it, and prepare uses its tokenizer.
  EXPECT_EQ(experts_of(steps[1]).base_model, test::model_fixture("llama_mha_untied"));
  EXPECT_EQ(prepare_of(steps[0]).tokenizer, test::model_fixture("llama_mha_untied"));
  const std::string message = test::error_message<ConfigError>(
      [&] { pipeline_steps(test::pipeline_experiment(dir.path(), {"run.models=[dense, moe]"})); });
  EXPECT_NE(message.find("run.models"), std::string::npos) << message;
  EXPECT_NE(message.find("'moe'"), std::string::npos) << message;
}

std::vector<std::string> step_names(const std::vector<PipelineStep>& steps) {
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s.name);
  return names;
}

// The name is a string_view so that GCC's -Wdangling-reference does not take the returned step
// for a reference into a temporary string.
const PipelineStep& step_named(const std::vector<PipelineStep>& steps, std::string_view name) {
  for (const auto& s : steps) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no step " + std::string(name));
}

// Rows built by other merge methods: one merge (and router) step per method; an upcycled MoE
// copies the base model, one expert per subdomain.
TEST(PipelineSteps, ExtraRowsAddTheirOwnMergeAndRouterSteps) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(
      dir.path(), {"run.models=[dense, naive, drop_upcycling_svmoe_lb, svmoe, btx_drop_upcycling]"}));
  EXPECT_EQ(step_names(steps),
            (std::vector<std::string>{"prepare", "base", "experts", "merge", "merge_naive", "merge_drop_upcycling",
                                      "merge_btx_drop_upcycling", "router", "router_drop_upcycling", "dense", "naive",
                                      "drop_upcycling_svmoe_lb", "svmoe", "btx_drop_upcycling", "eval", "report"}));
  const PipelineStep& naive = step_named(steps, "merge_naive");
  EXPECT_EQ(naive.needs, (std::vector<std::string>{"base"}));
  EXPECT_EQ(merge_of(naive).base_model, dir.path() / "base" / "final");
  EXPECT_EQ(merge_of(naive).num_experts, 3);
  EXPECT_EQ(merge_of(naive).output, dir.path() / "moe_naive");
  EXPECT_EQ(step_named(steps, "merge_btx_drop_upcycling").needs, (std::vector<std::string>{"experts"}));
  const PipelineStep& router = step_named(steps, "router_drop_upcycling");
  EXPECT_EQ(router.needs, (std::vector<std::string>{"merge_drop_upcycling", "prepare"}));
  EXPECT_EQ(router_of(router).model, dir.path() / "moe_drop_upcycling");
  const PipelineStep& model = step_named(steps, "drop_upcycling_svmoe_lb");
  EXPECT_EQ(finetune_of(model).model, dir.path() / "router_drop_upcycling" / "final");
  EXPECT_EQ(finetune_of(model).load_balancing.method, LoadBalancingMethod::kSwitch);
  EXPECT_EQ(step_named(steps, "naive").needs, (std::vector<std::string>{"prepare", "merge_naive"}));
  const auto eval = eval_of(step_named(steps, "eval"));
  ASSERT_EQ(eval.models.size(), 5u);
  EXPECT_EQ(eval.models[1].name, "Naive");
  EXPECT_EQ(eval.models[2].name, "SvMoE (Drop-Upcycling)");
  EXPECT_EQ(eval.models[2].lb, "yes");
  EXPECT_EQ(eval.models[3].name, "SvMoE");
  EXPECT_EQ(eval.models[4].name, "BTX+Drop-Upcycling");
  // A method's parameter changes its MoE and what reads it, not the others'.
  const auto other = pipeline_steps(test::pipeline_experiment(
      dir.path(),
      {"run.models=[dense, naive, drop_upcycling_svmoe_lb, svmoe, btx_drop_upcycling]", "merge.drop_ratio=0.25"}));
  EXPECT_EQ(changed_steps(steps, other),
            (std::vector<std::string>{"merge_drop_upcycling", "merge_btx_drop_upcycling", "router_drop_upcycling",
                                      "drop_upcycling_svmoe_lb", "btx_drop_upcycling", "eval", "report"}));
}

// The law for stage 2, driven by the merge-method descriptors: a method's parameter re-runs its
// merge (and what follows) exactly when the method reads it; the LB coefficient never does.
TEST(PipelineSteps, AMergeReRunsForTheParametersItsMethodReadsOnly) {
  test::ScratchDir dir;
  for (const MergeMethod method : enum_values<MergeMethod>()) {
    const std::string row = run_model_name({false, method, false, false, std::nullopt});
    const std::string models = "run.models=[dense, " + row + "]";
    const auto base = pipeline_steps(test::pipeline_experiment(dir.path(), {models}));
    const std::string merge = method == MergeMethod::kBtx ? "merge" : "merge_" + std::string(enum_name(method));
    ASSERT_NO_THROW(step_named(base, merge));
    const MergeMethodSpec& spec = merge_method_spec(method);
    for (const MergeParameter parameter : all_merge_parameters()) {
      const std::string change = std::string(merge_parameter_key(parameter)) + "=0.375";
      const auto changed = changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {models, change})));
      const std::vector<std::string> expected =
          spec.reads(parameter) ? std::vector<std::string>{merge, row, "eval", "report"} : std::vector<std::string>{};
      EXPECT_EQ(changed, expected) << enum_name(method) << ", " << change;
    }
    const auto alpha =
        pipeline_steps(test::pipeline_experiment(dir.path(), {models, "finetune.load_balancing.alpha=0.5"}));
    EXPECT_TRUE(changed_steps(base, alpha).empty()) << enum_name(method);
  }
}

// A row naming a stage-3 loss gets a router step of its own beside the configured loss's; the
// two SvMoE rows start from different routers and are told apart in the tables.
TEST(PipelineSteps, ARowNamingARouterLossTrainsItsOwnRouters) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(
      dir.path(), {"run.models=[btx, svmoe, svmoe_softmax_then_cross_entropy, svmoe_softmax_then_cross_entropy_lb]"}));
  EXPECT_EQ(step_names(steps),
            (std::vector<std::string>{
                "prepare", "base", "experts", "merge", "router", "router_softmax_then_cross_entropy", "btx", "svmoe",
                "svmoe_softmax_then_cross_entropy", "svmoe_softmax_then_cross_entropy_lb", "eval", "report"}));
  const PipelineStep& literal = step_named(steps, "router_softmax_then_cross_entropy");
  EXPECT_EQ(router_of(literal).loss, RouterLoss::kSoftmaxThenCrossEntropy);
  EXPECT_EQ(router_of(literal).model, dir.path() / "moe");
  EXPECT_EQ(router_of(literal).output, dir.path() / "router_softmax_then_cross_entropy");
  EXPECT_EQ(literal.settings.at("train_router.loss"), "softmax_then_cross_entropy");
  // The configured (default) loss is not in the plain router's hash: experiment directories made
  // before the key existed keep their router step.
  EXPECT_FALSE(step_named(steps, "router").settings.contains("train_router.loss"));
  EXPECT_EQ(finetune_of(step_named(steps, "svmoe_softmax_then_cross_entropy_lb")).model,
            dir.path() / "router_softmax_then_cross_entropy" / "final");
  const auto eval = eval_of(step_named(steps, "eval"));
  ASSERT_EQ(eval.models.size(), 4u);
  EXPECT_EQ(eval.models[1].name, "SvMoE");
  EXPECT_EQ(eval.models[2].name, "SvMoE (softmax+CE)");
  // Changing the configured loss re-runs the plain router and its rows, not the named one's.
  const auto other =
      pipeline_steps(test::pipeline_experiment(dir.path(), {"run.models=[btx, svmoe, svmoe_soft_cross_entropy]",
                                                            "train_router.loss=softmax_then_cross_entropy"}));
  EXPECT_EQ(step_named(other, "router").settings.at("train_router.loss"), "softmax_then_cross_entropy");
  EXPECT_EQ(router_of(step_named(other, "router_soft_cross_entropy")).loss, RouterLoss::kSoftCrossEntropy);
  // Naming the loss train_router.loss already gives is a clear error.
  const std::string message = test::error_message<ConfigError>(
      [&] { pipeline_steps(test::pipeline_experiment(dir.path(), {"run.models=[svmoe, svmoe_soft_cross_entropy]"})); });
  EXPECT_NE(message.find("soft_cross_entropy"), std::string::npos) << message;
}

// The teacher's and the few-shot draw's keys change what reads them; at their defaults they are
// not hashed at all.
TEST(PipelineSteps, TeacherAndShotDrawKeysReRunWhatReadsThem) {
  test::ScratchDir dir;
  const auto base = pipeline_steps(test::pipeline_experiment(dir.path()));
  EXPECT_EQ(
      changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"train_router.teacher_split=all"}))),
      (std::vector<std::string>{"router", "svmoe", "svmoe_lb", "eval", "report"}));
  EXPECT_EQ(changed_steps(base, pipeline_steps(test::pipeline_experiment(dir.path(), {"eval.fewshot.draw=once"}))),
            (std::vector<std::string>{"eval", "report"}));
  for (const auto& step : base) {
    for (const char* key :
         {"prepare.subdomain_of", "train_router.teacher_split", "train_router.teacher_tf", "eval.fewshot.draw"}) {
      EXPECT_FALSE(step.settings.contains(key)) << step.name << " " << key;
    }
  }
}

// Stage 1 runs only where a model merges trained experts (or the BTM ensemble reads them).
TEST(PipelineSteps, NoExpertsStepWithoutAModelThatMergesThem) {
  test::ScratchDir dir;
  const auto steps = pipeline_steps(test::pipeline_experiment(
      dir.path(), {"run.models=[dense, naive_lb, noise]", "run.pretrain_base.enabled=false"}));
  EXPECT_EQ(step_names(steps), (std::vector<std::string>{"prepare", "merge_naive", "merge_noise", "dense", "naive_lb",
                                                         "noise", "eval", "report"}));
  EXPECT_TRUE(step_named(steps, "merge_naive").needs.empty());  // the given base model: named in its settings
  EXPECT_EQ(step_named(steps, "merge_naive").settings.at("run.base_model"),
            test::model_fixture("llama_mha_untied").string());
  EXPECT_FALSE(step_named(steps, "merge_naive").settings.contains("merge.drop_ratio"));
  EXPECT_TRUE(step_named(steps, "merge_noise").settings.contains("merge.noise_std"));
  const auto with_btm = pipeline_steps(test::pipeline_experiment(
      dir.path(), {"run.models=[dense, naive]", "run.pretrain_base.enabled=false", "run.btm_ensemble=true"}));
  EXPECT_EQ(step_names(with_btm),
            (std::vector<std::string>{"prepare", "experts", "merge_naive", "dense", "naive", "eval", "report"}));
}

// Monju's ensemble: experts of two subdomains each, a step of their own beside stage 1's.
TEST(PipelineSteps, AnEnsembleOfPairExpertsHasItsOwnStep) {
  test::ScratchDir dir;
  const auto steps =
      pipeline_steps(test::pipeline_experiment(dir.path(), {"run.models=[dense, btx, naive]", "run.btm_ensemble=true",
                                                            "run.btm_coverage=pairs", "eval.btm.weighting=distance"}));
  EXPECT_EQ(step_names(steps), (std::vector<std::string>{"prepare", "base", "experts", "pair_experts", "merge",
                                                         "merge_naive", "dense", "btx", "naive", "eval", "report"}));
  const PipelineStep& pairs = step_named(steps, "pair_experts");
  EXPECT_EQ(pairs.tasks, 3);  // 3 subdomains: {0,1}, {0,2}, {1,2}
  EXPECT_EQ(experts_of(pairs).coverage, ExpertCoverage::kPairs);
  EXPECT_EQ(experts_of(pairs).output, dir.path() / "pair_experts");
  EXPECT_EQ(experts_of(step_named(steps, "experts")).coverage, ExpertCoverage::kSubdomains);
  EXPECT_NE(pairs.hash, step_named(steps, "experts").hash);
  const PipelineStep& eval = step_named(steps, "eval");
  EXPECT_EQ(eval.needs.back(), "pair_experts");
  const EvalSettings settings = eval_of(eval);
  ASSERT_EQ(settings.btm.experts.size(), 3u);
  EXPECT_EQ(settings.btm.experts[2], dir.path() / "pair_experts" / "expert_2");
  EXPECT_EQ(settings.btm.coverage, ExpertCoverage::kPairs);
  EXPECT_EQ(settings.btm.weighting, EnsembleWeighting::kDistance);
  // Without a row that merges trained experts, stage 1 does not run at all.
  const auto only_pairs = pipeline_steps(
      test::pipeline_experiment(dir.path(), {"run.models=[dense]", "run.btm_ensemble=true", "run.btm_coverage=pairs"}));
  EXPECT_EQ(step_names(only_pairs),
            (std::vector<std::string>{"prepare", "base", "pair_experts", "dense", "eval", "report"}));
}

// merge.moe_kind: soft makes every MoE row a soft MoE; rows with LB are refused before anything runs.
// A step's settings are checked with its laid-out paths, by the rules its subcommand checks.
TEST(PipelineSteps, AStepsRulesAreCheckedWithTheLayoutsValues) {
  test::ScratchDir dir;
  const std::string message = test::error_message<ConfigError>(
      [&] { pipeline_steps(test::pipeline_experiment(dir.path(), {"merge.num_experts_per_tok=4"})); });
  EXPECT_NE(message.find("merge.num_experts_per_tok"), std::string::npos) << message;
  EXPECT_NE(message.find("at most the number of experts (3)"), std::string::npos) << message;
}

TEST(PipelineSteps, ASoftMoeExperimentRefusesLoadBalancedRows) {
  test::ScratchDir dir;
  const auto steps =
      pipeline_steps(test::pipeline_experiment(dir.path(), {"run.models=[dense, btx, svmoe]", "merge.moe_kind=soft"}));
  EXPECT_EQ(merge_of(step_named(steps, "merge")).moe_kind, MoeKind::kSoft);
  EXPECT_EQ(step_named(steps, "merge").settings.at("merge.moe_kind"), "soft");
  const std::string message = test::error_message<ConfigError>(
      [&] { pipeline_steps(test::pipeline_experiment(dir.path(), {"merge.moe_kind=soft"})); });
  EXPECT_NE(message.find("'btx_lb', with load balancing"), std::string::npos) << message;
}

// merge.shared_expert makes every MoE row a Qwen2-MoE; `base` gives BTX's merge the base model,
// which then takes part in its hash.
TEST(PipelineSteps, ASharedExpertFromTheBaseGivesBtxItsBaseModel) {
  test::ScratchDir dir;
  const std::vector<std::string> rows = {"run.models=[dense, btx, svmoe, naive]"};
  const auto plain = pipeline_steps(test::pipeline_experiment(dir.path(), rows));
  auto with_base = rows;
  with_base.push_back("merge.shared_expert=base");
  const auto shared = pipeline_steps(test::pipeline_experiment(dir.path(), with_base));
  const PipelineStep& merge = step_named(shared, "merge");
  EXPECT_FALSE(merge_of(merge).base_model.empty());
  EXPECT_EQ(merge.settings.at("merge.shared_expert"), "base");
  EXPECT_EQ(merge.needs, (std::vector<std::string>{"base", "experts"}));  // the experiment pretrains its base
  EXPECT_TRUE(merge_of(step_named(plain, "merge")).base_model.empty());
  EXPECT_EQ(step_named(shared, "merge_naive").settings.at("merge.shared_expert"), "base");
  const auto changed = changed_steps(plain, shared);
  EXPECT_EQ(std::count(changed.begin(), changed.end(), "experts"), 0);
  EXPECT_EQ(std::count(changed.begin(), changed.end(), "merge"), 1);
  EXPECT_EQ(std::count(changed.begin(), changed.end(), "merge_naive"), 1);
}

// The shipped quickstart experiment, alone and with the rows of configs/quickstart/upcycling.yaml,
// soft.yaml, shared.yaml or cartesian.yaml.
TEST(PipelineSteps, TheQuickstartConfigsMakeTheirPlans) {
  const fs::path configs = fs::path(SVMOE_SOURCE_DIR) / "configs" / "quickstart";
  test::ScratchDir dir;
  const auto load = [&](const std::string& extra) {
    ConfigTree config(default_config());
    config.merge_file(configs / "experiment.yaml");
    if (!extra.empty()) config.merge_file(configs / extra);
    config.set("run.dir", dir.path().string(), "test");
    config.set("run.base_model", (configs / "base_model").string(), "test");
    return pipeline_steps(config);
  };
  EXPECT_EQ(load("").size(), 15u);           // and a second router step, two more models (the other stage-3 loss)
  EXPECT_EQ(load("soft.yaml").size(), 11u);  // prepare, 2 merges, 2 routers, 4 models, eval, report
  EXPECT_EQ(load("shared.yaml").size(), 11u);
  EXPECT_EQ(step_named(load("shared.yaml"), "merge_naive").settings.at("merge.shared_expert"), "base");
  EXPECT_EQ(load("cartesian.yaml").size(), 11u);
  EXPECT_EQ(step_named(load("cartesian.yaml"), "merge_naive").settings.at("merge.moe_kind"), "cartesian");
  const auto steps = load("upcycling.yaml");
  EXPECT_EQ(steps.size(), 24u);
  EXPECT_EQ(step_named(steps, "drop_upcycling_svmoe").needs,
            (std::vector<std::string>{"prepare", "router_drop_upcycling"}));
}

}  // namespace svmoe
