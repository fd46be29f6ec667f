#include "svmoe/stages/pipeline.h"

#include <algorithm>
#include <map>
#include <set>

#include "svmoe/config/expert_coverage.h"
#include "svmoe/config/merge_method.h"
#include "svmoe/config/setting_reader.h"
#include "svmoe/config/setting_rows.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/stages/train_experts.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/sha256.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// The dense model the experts and Dense start from: the pretrained base, or the given one.
fs::path base_model_of(const RunSettings& run) {
  return run.pretrain_base ? RunDirectory(ExperimentDirectory(run.dir).base()).final_model() : run.base_model;
}

std::string router_loss_label(RouterLoss loss) {
  switch (loss) {
    case RouterLoss::kSoftCrossEntropy:
      return "soft CE";
    case RouterLoss::kSoftmaxThenCrossEntropy:
      break;
  }
  return "softmax+CE";
}

// How the tables name each stage-4 model: name, LB column, report label. The paper's are Dense,
// BTX and SvMoE; another construction's MoE is named by its method, "SvMoE (method)" with the
// TF-IDF-trained router.
struct ModelRole {
  std::string table_name, lb, label;
};
ModelRole model_role(const RunModel& model) {
  if (model.dense) return {"Dense", "-", "Dense"};
  std::string name(merge_method_spec(model.method).label);
  if (model.supervised_router) {
    std::vector<std::string> qualifiers;
    if (model.method != MergeMethod::kBtx) qualifiers.push_back(name);
    if (model.router_loss) qualifiers.push_back(router_loss_label(*model.router_loss));
    name = qualifiers.empty() ? "SvMoE" : "SvMoE (" + join(qualifiers, ", ") + ")";
  }
  return {name, model.load_balanced ? "yes" : "no", model.load_balanced ? name + " +LB" : name};
}

// The merge methods of the MoE rows, in enum order.
std::vector<MergeMethod> methods_of(const std::vector<RunModel>& models) {
  std::vector<MergeMethod> methods;
  for (const MergeMethod method : enum_values<MergeMethod>()) {
    const bool used =
        std::any_of(models.begin(), models.end(), [&](const RunModel& m) { return !m.dense && m.method == method; });
    if (used) methods.push_back(method);
  }
  return methods;
}

// The router trainings the rows with a supervised router start from: (method, the loss a row
// names or none for train_router.loss's), in enum order.
using RouterTraining = std::pair<MergeMethod, std::optional<RouterLoss>>;
std::vector<RouterTraining> router_trainings_of(const std::vector<RunModel>& models) {
  std::vector<RouterTraining> trainings;
  std::vector<std::optional<RouterLoss>> losses = {std::nullopt};
  for (const RouterLoss loss : enum_values<RouterLoss>()) losses.emplace_back(loss);
  for (const MergeMethod method : enum_values<MergeMethod>()) {
    for (const auto& loss : losses) {
      const bool used = std::any_of(models.begin(), models.end(), [&](const RunModel& m) {
        return m.supervised_router && m.method == method && m.router_loss == loss;
      });
      if (used) trainings.emplace_back(method, loss);
    }
  }
  return trainings;
}

// Whether a stage's numbers depend on runtime.seed: the split and clustering, every training's
// sampling and initialisation, the merge's noise, dropped neurons and router initialisation.
bool reads_seed(Stage stage) {
  switch (stage) {
    case Stage::kPrepare:
    case Stage::kFinetune:
    case Stage::kTrainExperts:
    case Stage::kMerge:
    case Stage::kTrainRouter:
      return true;
    case Stage::kEval:
    case Stage::kReport:
      return false;
  }
  return true;
}

std::string step_hash(const PipelineStep& step, const std::vector<PipelineStep>& earlier) {
  std::string text = step.name + "\n" + enum_name(step.stage) + "\n" + step.settings.dump() + "\n";
  for (const auto& need : step.needs) {
    const auto it = std::find_if(earlier.begin(), earlier.end(), [&](const PipelineStep& s) { return s.name == need; });
    text += need + "=" + it->hash + "\n";
  }
  return sha256_hex(text);
}

// Reads a base model's config.json for the base step's settings (its architecture is what the
// step trains), with an error that says what is missing.
Json base_model_config(const fs::path& base_model) {
  if (!fs::exists(model_config_file(base_model))) {
    throw ConfigError(
        "config key 'run.base_model' is '" + base_model.string() + "', which holds no config.json",
        "give a Hugging Face model directory (with run.pretrain_base.enabled, one with only config.json)");
  }
  return read_model_config_json(base_model);
}

// The experiment config parsed once: each stage's section without the paths svmoe run lays out
// (PathsFrom::kRunLayout), and each training section's `train` as that stage resolves it. An
// add_* step copies the section its stage reads, sets the layout's paths and checks the result.
struct ExperimentSettings {
  explicit ExperimentSettings(const ConfigTree& config)
      : run(parse_run_settings(config)),
        runtime(parse_runtime_settings(config)),
        prepare(parse_prepare_settings(config, PathsFrom::kRunLayout)),
        train_experts(parse_train_experts_settings(config, PathsFrom::kRunLayout)),
        merge(parse_merge_settings(config, PathsFrom::kRunLayout)),
        train_router(parse_train_router_settings(config, PathsFrom::kRunLayout)),
        finetune(parse_finetune_settings(config, PathsFrom::kRunLayout)),
        eval(parse_eval_settings(config, PathsFrom::kRunLayout)),
        report(parse_report_settings(config, PathsFrom::kRunLayout)) {}

  RunSettings run;
  RuntimeSettings runtime;
  PrepareSettings prepare;
  TrainExpertsSettings train_experts;
  MergeSettings merge;
  TrainRouterSettings train_router;
  FinetuneSettings finetune;
  EvalSettings eval;
  ReportSettings report;
};

// The section whose `train` keys the base model's pretraining reads over `train`.
constexpr const char* kBaseTrainSection = "run.pretrain_base";

// The steps of one experiment, one add_* per kind of step, in the order they run. Each step
// gets its stage's inputs (the experiment's settings with the layout's paths), checked now so
// that a bad key stops the run before hours of work, and the settings its result depends on
// (hashed with its needs' hashes: step_hash).
class PipelineBuilder {
 public:
  PipelineBuilder(const ConfigTree& experiment, const ExperimentSettings& settings, std::int64_t num_experts)
      : experiment_(experiment),
        read_(experiment),
        e_(settings),
        run_(settings.run),
        layout_(settings.run.dir),
        num_experts_(num_experts) {}

  std::vector<PipelineStep> take_steps() { return std::move(steps_); }

  void add_prepare() {
    PrepareSettings prepare = e_.prepare;
    prepare.output = layout_.dataset();
    // The base model's own tokenizer, as the paper uses, unless one is given or trained.
    if (prepare.tokenizer.empty() && !prepare.tokenizer_train.enabled) prepare.tokenizer = run_.base_model;
    check_prepare_settings(prepare, read_);
    Json settings = hashed(prepare, e_.prepare);
    // The dataset records the experiment's config, less the unrelated forward check.
    Json recorded = experiment_.root();
    recorded.erase("forward");
    add("prepare", {}, layout_.dataset(), PrepareStageInputs{prepare, recorded}, std::move(settings));
  }

  // The base model pretrained from scratch on all subdomains (run.pretrain_base): a fine-tune of
  // a random initialisation, without LB, on every subdomain.
  void add_base() {
    FinetuneSettings base = e_.finetune;
    base.model = run_.base_model;
    base.init = ModelInit::kRandom;
    base.dataset = layout_.dataset();
    base.subdomains.clear();
    base.subdomain_weights.clear();
    base.output = layout_.base();
    base.load_balancing.method = LoadBalancingMethod::kNone;
    check_finetune_settings(base);
    Json settings = hashed_train_settings(experiment_, kBaseTrainSection);
    settings["run.base_model"] = run_.base_model.string();
    settings["run.base_model/config.json"] = base_model_config(run_.base_model);
    const TrainSettings train = parse_train_settings(experiment_, kBaseTrainSection);
    add("base", {"prepare"}, layout_.base(), FinetuneStageInputs{base, train}, std::move(settings));
    base_needs_.push_back("base");
  }

  // A given base model (not pretrained here) is read once, after the steps that come before it.
  void read_given_base() {
    if (!run_.pretrain_base) given_base_ = base_model_config(run_.base_model);
  }

  // Stage 1: one expert per subdomain (or per pair of subdomains, the BTM ensemble's), as one
  // step of array tasks.
  void add_experts(const std::string& name, ExpertCoverage coverage, const fs::path& output) {
    TrainExpertsSettings experts = e_.train_experts;
    experts.base_model = base_model_of(run_);
    experts.dataset = layout_.dataset();
    experts.output = output;
    experts.coverage = coverage;
    experts.experts.clear();
    Json settings = hashed(experts, e_.train_experts);
    if (coverage != ExpertCoverage::kSubdomains) settings["train_experts.coverage"] = enum_name(coverage);
    settings.update(hashed_train_settings(experiment_, own_train_section(Stage::kTrainExperts)));
    base_identity(settings);
    std::vector<std::string> needs = {"prepare"};
    needs.insert(needs.end(), base_needs_.begin(), base_needs_.end());
    const TrainSettings train = parse_train_settings(experiment_, own_train_section(Stage::kTrainExperts));
    add(name, needs, output, TrainExpertsStageInputs{experts, train}, std::move(settings),
        static_cast<std::int64_t>(expert_subdomains(coverage, num_experts_).size()));
  }

  // Stage 2: the MoE of one merge method, with only the parameters that method reads hashed. A
  // method that merges trained experts reads stage 1's (and the base model's FFN for a shared
  // expert that starts from it); an upcycling method copies the base model num_experts times,
  // one expert per subdomain as BTX has.
  void add_merge(MergeMethod method) {
    MergeSettings merge = e_.merge;
    const bool trained = merge_method_spec(method).merges_trained_experts();
    const bool reads_base = !trained || merge.shared_expert == SharedExpertInit::kBase;
    merge.method = method;
    merge.output = layout_.moe(method);
    merge.experts.clear();
    merge.num_experts = 0;
    if (trained) {
      for (std::int64_t n = 0; n < num_experts_; ++n) merge.experts.push_back(expert_directory(layout_.experts(), n));
    } else {
      merge.num_experts = num_experts_;
    }
    if (reads_base) merge.base_model = base_model_of(run_);
    check_merge_settings(merge, read_);
    Json settings = hashed(merge, e_.merge);
    settings["merge.method"] = enum_name(method);
    if (!trained) settings["merge.num_experts"] = num_experts_;
    if (reads_base) base_identity(settings);
    std::vector<std::string> needs = reads_base ? base_needs_ : std::vector<std::string>{};
    if (trained) needs.push_back("experts");
    add(ExperimentDirectory::method_step("merge", method), needs, layout_.moe(method), MergeStageInputs{merge},
        std::move(settings));
  }

  // Stage 3: the routers of `method`'s MoE (add_merge first), trained with train_router.loss or,
  // where a row names one, `loss`.
  void add_router(MergeMethod method, std::optional<RouterLoss> loss) {
    TrainRouterSettings router = e_.train_router;
    router.model = layout_.moe(method);
    router.dataset = layout_.dataset();
    router.output = layout_.router(method, loss);
    if (loss) router.loss = *loss;
    Json settings = hashed(router, e_.train_router);
    settings.update(hashed_train_settings(experiment_, own_train_section(Stage::kTrainRouter)));
    const TrainSettings train = parse_train_settings(experiment_, own_train_section(Stage::kTrainRouter));
    PipelineStep& step = add(ExperimentDirectory::router_step(method, loss),
                             {ExperimentDirectory::method_step("merge", method), "prepare"},
                             layout_.router(method, loss), TrainRouterStageInputs{router, train}, std::move(settings));
    step.trains_moe = true;
  }

  // Stage 4 (or Dense): the fine-tune of one run.models row, from the base, the MoE or its
  // routers; with the run's LB method where the row asks for LB.
  void add_model(const RunModel& model) {
    const std::string name = run_model_name(model);
    FinetuneSettings finetune = e_.finetune;
    finetune.model = model.dense ? base_model_of(run_)
                                 : (model.supervised_router
                                        ? RunDirectory(layout_.router(model.method, model.router_loss)).final_model()
                                        : layout_.moe(model.method));
    finetune.init = ModelInit::kPretrained;
    finetune.dataset = layout_.dataset();
    finetune.output = layout_.model(name);
    finetune.load_balancing.method = model.load_balanced ? run_.lb_method : LoadBalancingMethod::kNone;
    check_finetune_settings(finetune);
    // The step's name says its init; its LB method is hashed (the LB parameters only where LB
    // is on: unread_setting_keys).
    Json settings = hashed(finetune, e_.finetune);
    settings["finetune.load_balancing.method"] = enum_name(finetune.load_balancing.method);
    settings.update(hashed_train_settings(experiment_, own_train_section(Stage::kFinetune)));
    if (model.dense) base_identity(settings);
    std::vector<std::string> needs = {"prepare"};
    if (model.dense) {
      needs.insert(needs.end(), base_needs_.begin(), base_needs_.end());
    } else {
      needs.push_back(model.supervised_router ? ExperimentDirectory::router_step(model.method, model.router_loss)
                                              : ExperimentDirectory::method_step("merge", model.method));
    }
    const TrainSettings train = parse_train_settings(experiment_, own_train_section(Stage::kFinetune));
    PipelineStep& step =
        add(name, needs, layout_.model(name), FinetuneStageInputs{finetune, train}, std::move(settings));
    step.trains_moe = !model.dense;
    model_steps_.push_back(name);
  }

  // §5: every model's metrics, and the BTM ensemble's (of `ensemble_experts`' experts, if any).
  void add_eval(const std::string& ensemble_experts) {
    eval_ = e_.eval;
    for (const RunModel& model : run_.models) {
      const ModelRole role = model_role(model);
      eval_.models.push_back(
          {role.table_name, RunDirectory(layout_.model(run_model_name(model))).final_model(), role.lb});
    }
    eval_.dataset = layout_.dataset();
    eval_.output = layout_.eval();
    eval_.btm.experts.clear();
    const fs::path experts_dir = ensemble_experts == "pair_experts" ? layout_.pair_experts() : layout_.experts();
    const ExpertCoverage coverage =
        ensemble_experts == "pair_experts" ? ExpertCoverage::kPairs : ExpertCoverage::kSubdomains;
    if (!ensemble_experts.empty()) {
      const auto count = static_cast<std::int64_t>(expert_subdomains(coverage, num_experts_).size());
      for (std::int64_t k = 0; k < count; ++k) eval_.btm.experts.push_back(expert_directory(experts_dir, k));
    }
    eval_.btm.coverage = run_.btm_coverage;
    check_eval_settings(eval_, read_);
    Json settings = hashed(eval_, e_.eval);
    settings["run.models"] = model_steps_;
    settings["run.btm_ensemble"] = run_.btm_ensemble;
    if (ensemble_experts == "pair_experts") settings["run.btm_coverage"] = enum_name(run_.btm_coverage);
    std::vector<std::string> needs = model_steps_;
    needs.push_back("prepare");
    if (!ensemble_experts.empty()) needs.push_back(ensemble_experts);
    add("eval", needs, layout_.eval(), EvalStageInputs{eval_}, std::move(settings));
  }

  // The report lives in eval/ (report.html) and reads the runs' metrics and the eval's numbers.
  void add_report() {
    ReportSettings report = e_.report;
    for (const RunModel& model : run_.models) {
      report.runs.push_back({model_role(model).label, layout_.model(run_model_name(model))});
    }
    report.output = layout_.report();
    Json settings = hashed(report, e_.report);
    std::vector<std::string> needs = {"eval"};
    needs.insert(needs.end(), model_steps_.begin(), model_steps_.end());
    add("report", needs, layout_.report(), ReportStageInputs{report, eval_}, std::move(settings));
  }

 private:
  PipelineStep& add(std::string name, std::vector<std::string> needs, fs::path output, StageInputs inputs,
                    Json settings, std::int64_t tasks = 1) {
    PipelineStep step;
    step.name = std::move(name);
    step.stage = stage_of(inputs);
    step.needs = std::move(needs);
    step.output = std::move(output);
    step.inputs = std::move(inputs);
    step.settings = std::move(settings);
    if (reads_seed(step.stage)) step.settings["runtime.seed"] = e_.runtime.seed;
    step.tasks = tasks;
    step.hash = step_hash(step, steps_);
    steps_.push_back(std::move(step));
    return steps_.back();
  }
  // The step's own settings against the configured ones (config/setting_rows.h's hashed_settings),
  // each value as the experiment config wrote it where the step keeps it.
  template <typename Settings>
  Json hashed(const Settings& used, const Settings& configured) const {
    return hashed_settings(used, configured, [this](const std::string& key) { return experiment_.at(key); });
  }
  // A given base model is an input of the experts, of a merge that reads it and of Dense: named
  // by its path and config (a pretrained base is a step, in their needs instead).
  void base_identity(Json& settings) const {
    if (run_.pretrain_base) return;
    settings["run.base_model"] = run_.base_model.string();
    settings["run.base_model/config.json"] = given_base_;
  }

  const ConfigTree& experiment_;
  const SettingReader read_;  // names a key and where it came from in the checks' errors
  const ExperimentSettings& e_;
  const RunSettings& run_;
  const ExperimentDirectory layout_;
  const std::int64_t num_experts_;
  Json given_base_;  // a given base model's config.json (read_given_base)
  std::vector<PipelineStep> steps_;
  std::vector<std::string> base_needs_;  // what a step that trains the base model's weights needs
  std::vector<std::string> model_steps_;
  EvalSettings eval_;  // the eval step's, which the report reads too
};

// The _lb rows need an MoE whose architecture balances something (not a soft MoE).
void check_load_balanced_rows(const ExperimentSettings& e) {
  const MoeKind moe_kind = e.merge.moe_kind;
  const Architecture merged = merged_architecture(moe_kind, e.merge.shared_expert != SharedExpertInit::kNone);
  if (architecture_row(merged).load_balances) return;
  for (const RunModel& model : e.run.models) {
    if (model.load_balanced) {
      throw ConfigError("run.models asks for '" + run_model_name(model) +
                            "', with load balancing, but merge.moe_kind is " + enum_name(moe_kind) + " (a " +
                            architecture_row(merged).model_type +
                            " model runs every expert on every position and has nothing to balance)",
                        "drop the _lb rows, or set merge.moe_kind: sparse");
    }
  }
}

// A row naming the stage-3 loss that train_router.loss already gives every SvMoE row.
void check_router_loss_rows(const ExperimentSettings& e) {
  for (const auto& [method, loss] : router_trainings_of(e.run.models)) {
    if (loss == e.train_router.loss) {
      const RunModel plain{false, method, true, false, std::nullopt};
      throw ConfigError("run.models names the stage-3 loss " + std::string(enum_name(*loss)) +
                            ", which train_router.loss already gives every SvMoE row",
                        "write '" + run_model_name(plain) + "' (or its _lb row) instead");
    }
  }
}

}  // namespace

std::vector<PipelineStep> pipeline_steps(const ConfigTree& experiment) {
  const ExperimentSettings settings(experiment);
  const RunSettings& run = settings.run;
  const std::int64_t num_experts = settings.prepare.num_subdomains;
  if (num_experts < 2) {
    throw ConfigError("config key 'prepare.num_subdomains' is " + std::to_string(num_experts) +
                          "; svmoe run builds a mixture of experts, one per subdomain",
                      "set prepare.num_subdomains to 2 or more");
  }
  PipelineBuilder pipeline(experiment, settings, num_experts);

  pipeline.add_prepare();
  if (run.pretrain_base) pipeline.add_base();
  pipeline.read_given_base();
  // Stage 1 only where a model merges trained experts, or the BTM ensemble reads them; the
  // ensemble's experts of two subdomains each (Monju) are a step of their own.
  const bool btm_pairs = run.btm_ensemble && run.btm_coverage == ExpertCoverage::kPairs;
  const bool needs_experts =
      (run.btm_ensemble && !btm_pairs) || std::any_of(run.models.begin(), run.models.end(), [](const RunModel& m) {
        return !m.dense && merge_method_spec(m.method).merges_trained_experts();
      });
  const ExperimentDirectory layout(run.dir);
  if (needs_experts) pipeline.add_experts("experts", ExpertCoverage::kSubdomains, layout.experts());
  if (btm_pairs) pipeline.add_experts("pair_experts", ExpertCoverage::kPairs, layout.pair_experts());
  check_load_balanced_rows(settings);
  // Stage 2, one MoE per merge method the models use; stage 3, for each MoE (and loss, where a
  // row names one) that a model with a supervised router starts from.
  for (const MergeMethod method : methods_of(run.models)) pipeline.add_merge(method);
  check_router_loss_rows(settings);
  for (const auto& [method, loss] : router_trainings_of(run.models)) pipeline.add_router(method, loss);
  for (const RunModel& model : run.models) pipeline.add_model(model);
  if (!run.models.empty()) {
    pipeline.add_eval(!run.btm_ensemble ? "" : btm_pairs ? "pair_experts" : "experts");
    pipeline.add_report();
  }
  return pipeline.take_steps();
}

}  // namespace svmoe
