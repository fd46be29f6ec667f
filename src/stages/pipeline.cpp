#include "svmoe/stages/pipeline.h"

#include <algorithm>
#include <map>
#include <set>

#include "svmoe/config/expert_coverage.h"
#include "svmoe/config/merge_method.h"
#include "svmoe/config/setting_reader.h"
#include "svmoe/config/setting_table.h"
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

constexpr const char* kLayoutOrigin = "svmoe run (the run.dir layout)";

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

// The settings of `section` that a step's result depends on (setting_table.h): not those that
// change only how or where it runs, nor the paths svmoe run lays out (an input's identity is
// its step's hash); a stage's own `train` keys are added resolved (add_train_settings).
Json hashed_settings(const ConfigTree& config, const std::string& section) {
  Json out = Json::object();
  for (const auto& spec : setting_table()) {
    if (!starts_with(spec.key, section + ".") || !spec.affects_numbers || spec.set_by_run ||
        spec.type == SettingType::kTrainOverrides) {
      continue;
    }
    if (!spec.hashed_at_default && config.at(spec.key) == spec.default_value) continue;
    out[spec.key] = config.at(spec.key);
  }
  return out;
}

// The training keys a step's result depends on, resolved as the step reads them.
void add_train_settings(Json& settings, const ConfigTree& config, const std::string& section) {
  const Json train = resolved_train_section(config, section);
  for (auto it = train.begin(); it != train.end(); ++it) {
    if (setting_spec("train." + it.key()).affects_numbers) settings["train." + it.key()] = it.value();
  }
}

std::string step_hash(const PipelineStep& step, const std::vector<PipelineStep>& earlier) {
  std::string text = step.name + "\n" + enum_name(step.stage) + "\n" + step.settings.dump() + "\n";
  for (const auto& need : step.needs) {
    const auto it = std::find_if(earlier.begin(), earlier.end(), [&](const PipelineStep& s) { return s.name == need; });
    text += need + "=" + it->hash + "\n";
  }
  return sha256_hex(text);
}

PipelineStep new_step(std::string name, Stage stage, std::string train_section, std::vector<std::string> needs,
                      fs::path output, const ConfigTree& config) {
  return {std::move(name),
          stage,
          std::move(train_section),
          std::move(needs),
          std::move(output),
          config,
          Json::object(),
          {},
          1,
          false};
}

// The experiment config with every stage's input and output paths set to the layout (merge and
// router as for BTX; method_config sets another method's).
ConfigTree layout_config(const ConfigTree& experiment, const RunSettings& run, std::int64_t num_experts) {
  const ExperimentDirectory layout(run.dir);
  ConfigTree config = experiment;
  const auto set = [&](const std::string& key, Json value) { config.set(key, std::move(value), kLayoutOrigin); };
  const fs::path base_model = base_model_of(run);
  set("prepare.output", layout.dataset().string());
  const SettingReader read(config);
  const bool tokenizer_given = !read.path("prepare.tokenizer").empty();
  if (!tokenizer_given && !read.boolean("prepare.tokenizer_train.enabled")) {
    set("prepare.tokenizer", run.base_model.string());  // the base model's own tokenizer, as the paper uses
  }
  set("train_experts.base_model", base_model.string());
  set("train_experts.dataset", layout.dataset().string());
  set("train_experts.output", layout.experts().string());
  set("train_experts.coverage", enum_name(ExpertCoverage::kSubdomains));
  set("train_experts.experts", Json::array());
  Json experts = Json::array();
  for (std::int64_t n = 0; n < num_experts; ++n) experts.push_back(expert_directory(layout.experts(), n).string());
  Json pair_experts = Json::array();
  const auto pairs = expert_subdomains(ExpertCoverage::kPairs, num_experts).size();
  for (std::size_t k = 0; k < pairs; ++k) {
    pair_experts.push_back(expert_directory(layout.pair_experts(), static_cast<std::int64_t>(k)).string());
  }
  set("merge.method", enum_name(MergeMethod::kBtx));
  set("merge.experts", experts);
  set("merge.base_model", "");
  set("merge.num_experts", 0);
  set("merge.output", layout.moe(MergeMethod::kBtx).string());
  set("train_router.model", layout.moe(MergeMethod::kBtx).string());
  set("train_router.dataset", layout.dataset().string());
  set("train_router.output", layout.router(MergeMethod::kBtx).string());
  set("finetune.dataset", layout.dataset().string());
  Json models = Json::array(), runs = Json::array();
  for (const RunModel& model : run.models) {
    const ModelRole role = model_role(model);
    const fs::path dir = layout.model(run_model_name(model));
    models.push_back({{"name", role.table_name}, {"path", RunDirectory(dir).final_model().string()}, {"lb", role.lb}});
    runs.push_back({{"name", role.label}, {"path", dir.string()}});
  }
  set("eval.models", models);
  set("eval.dataset", layout.dataset().string());
  set("eval.output", layout.eval().string());
  const bool btm_pairs = run.btm_coverage == ExpertCoverage::kPairs;
  set("eval.btm.experts", run.btm_ensemble ? (btm_pairs ? pair_experts : experts) : Json::array());
  set("eval.btm.coverage", enum_name(run.btm_coverage));
  set("report.runs", runs);
  set("report.output", (layout.report()).string());
  return config;
}

// Whether merging trained experts also reads the base model: to start the shared expert from its
// FFN (merge.shared_expert base).
bool reads_base_model_beside_experts(const ConfigTree& config) {
  return SettingReader(config).option<SharedExpertInit>("merge.shared_expert") == SharedExpertInit::kBase;
}

// The config with merge and router paths set for `method`'s MoE: an upcycling method copies the
// base model num_experts times, one expert per subdomain as BTX has.
ConfigTree method_config(const ConfigTree& config, const RunSettings& run, MergeMethod method,
                         std::int64_t num_experts) {
  const ExperimentDirectory layout(run.dir);
  ConfigTree out = config;
  const auto set = [&](const std::string& key, Json value) { out.set(key, std::move(value), kLayoutOrigin); };
  set("merge.method", enum_name(method));
  if (!merge_method_spec(method).merges_trained_experts()) {
    set("merge.experts", Json::array());
    set("merge.base_model", base_model_of(run).string());
    set("merge.num_experts", num_experts);
  } else if (reads_base_model_beside_experts(out)) {
    set("merge.base_model", base_model_of(run).string());
  }
  set("merge.output", layout.moe(method).string());
  set("train_router.model", layout.moe(method).string());
  set("train_router.output", layout.router(method).string());
  return out;
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

// The steps of one experiment, one add_* per kind of step, in the order they run. Each step
// gets its config (the experiment's, with the layout's paths), the settings its result depends
// on (hashed with its needs' hashes: step_hash) and is checked now, so that a bad key stops the
// run before hours of work.
class PipelineBuilder {
 public:
  PipelineBuilder(const ConfigTree& config, const RunSettings& run, std::int64_t num_experts)
      : config_(config), run_(run), layout_(run.dir), num_experts_(num_experts), seed_(config.at("runtime.seed")) {}

  std::vector<PipelineStep> take_steps() { return std::move(steps_); }

  void add_prepare() {
    PipelineStep prepare = new_step("prepare", Stage::kPrepare, "", {}, layout_.dataset(), config_);
    parse_prepare_settings(config_);
    prepare.settings = hashed_settings(config_, "prepare");
    prepare.settings["runtime.seed"] = seed_;
    add(std::move(prepare));
  }

  // The base model pretrained from scratch on all subdomains (run.pretrain_base).
  void add_base() {
    ConfigTree base_config = config_;
    base_config.set("finetune.model", run_.base_model.string(), kLayoutOrigin);
    base_config.set("finetune.init", enum_name(ModelInit::kRandom), kLayoutOrigin);
    base_config.set("finetune.subdomains", Json::array(), kLayoutOrigin);
    base_config.set("finetune.subdomain_weights", Json::array(), kLayoutOrigin);
    base_config.set("finetune.load_balancing.method", enum_name(LoadBalancingMethod::kNone), kLayoutOrigin);
    base_config.set("finetune.output", layout_.base().string(), kLayoutOrigin);
    PipelineStep base =
        new_step("base", Stage::kFinetune, "run.pretrain_base", {"prepare"}, layout_.base(), base_config);
    parse_train_settings(base_config, base.train_section);
    base.settings["run.base_model"] = run_.base_model.string();
    base.settings["run.base_model/config.json"] = base_model_config(run_.base_model);
    add_train_settings(base.settings, base_config, base.train_section);
    base.settings["runtime.seed"] = seed_;
    add(std::move(base));
    base_needs_.push_back("base");
  }

  // A given base model (not pretrained here) is read once, after the steps that come before it.
  void read_given_base() {
    if (!run_.pretrain_base) given_base_ = base_model_config(run_.base_model);
  }

  // Stage 1: one expert per subdomain (or per pair of subdomains, the BTM ensemble's), as one
  // step of array tasks.
  void add_experts(const std::string& name, ExpertCoverage coverage, const fs::path& output) {
    ConfigTree experts_config = config_;
    experts_config.set("train_experts.coverage", enum_name(coverage), kLayoutOrigin);
    experts_config.set("train_experts.output", output.string(), kLayoutOrigin);
    PipelineStep experts = new_step(name, Stage::kTrainExperts, "train_experts", {"prepare"}, output, experts_config);
    experts.needs.insert(experts.needs.end(), base_needs_.begin(), base_needs_.end());
    experts.tasks = static_cast<std::int64_t>(expert_subdomains(coverage, num_experts_).size());
    parse_train_experts_settings(experts_config);
    parse_train_settings(experts_config, experts.train_section);
    experts.settings = hashed_settings(experts_config, "train_experts");
    if (coverage != ExpertCoverage::kSubdomains) experts.settings["train_experts.coverage"] = enum_name(coverage);
    add_train_settings(experts.settings, experts_config, experts.train_section);
    base_identity(experts.settings);
    experts.settings["runtime.seed"] = seed_;
    add(std::move(experts));
  }

  // Stage 2: the MoE of one merge method, with only the parameters that method reads hashed.
  void add_merge(MergeMethod method) {
    const ConfigTree& moe_config =
        method_configs_.emplace(method, method_config(config_, run_, method, num_experts_)).first->second;
    const MergeMethodSpec& spec = merge_method_spec(method);
    const bool trained = spec.merges_trained_experts();
    const bool reads_base = !trained || reads_base_model_beside_experts(moe_config);
    std::vector<std::string> merge_needs = reads_base ? base_needs_ : std::vector<std::string>{};
    if (trained) merge_needs.push_back("experts");
    PipelineStep merge = new_step(ExperimentDirectory::method_step("merge", method), Stage::kMerge, "", merge_needs,
                                  layout_.moe(method), moe_config);
    parse_merge_settings(moe_config);
    merge.settings = hashed_settings(moe_config, "merge");
    merge.settings["merge.method"] = enum_name(method);
    if (!trained) merge.settings["merge.num_experts"] = num_experts_;
    for (const MergeParameter parameter : all_merge_parameters()) {
      if (!spec.reads(parameter)) merge.settings.erase(std::string(merge_parameter_key(parameter)));
    }
    if (reads_base) base_identity(merge.settings);
    merge.settings["runtime.seed"] = seed_;
    add(std::move(merge));
  }

  // Stage 3: the routers of `method`'s MoE (add_merge first), trained with train_router.loss or,
  // where a row names one, `loss`.
  void add_router(MergeMethod method, std::optional<RouterLoss> loss) {
    ConfigTree router_config = method_configs_.at(method);
    if (loss) router_config.set("train_router.loss", enum_name(*loss), kLayoutOrigin);
    router_config.set("train_router.output", layout_.router(method, loss).string(), kLayoutOrigin);
    PipelineStep router = new_step(ExperimentDirectory::router_step(method, loss), Stage::kTrainRouter, "train_router",
                                   {ExperimentDirectory::method_step("merge", method), "prepare"},
                                   layout_.router(method, loss), router_config);
    router.trains_moe = true;
    parse_train_router_settings(router_config);
    parse_train_settings(router_config, router.train_section);
    router.settings = hashed_settings(router_config, "train_router");
    add_train_settings(router.settings, router_config, router.train_section);
    router.settings["runtime.seed"] = seed_;
    add(std::move(router));
  }

  // Stage 4 (or Dense): the fine-tune of one run.models row, from the base, the MoE or its routers.
  void add_model(const RunModel& model) {
    const std::string name = run_model_name(model);
    ConfigTree model_config = config_;
    const fs::path from =
        model.dense
            ? base_model_of(run_)
            : (model.supervised_router ? RunDirectory(layout_.router(model.method, model.router_loss)).final_model()
                                       : layout_.moe(model.method));
    const LoadBalancingMethod lb = model.load_balanced ? run_.lb_method : LoadBalancingMethod::kNone;
    model_config.set("finetune.model", from.string(), kLayoutOrigin);
    model_config.set("finetune.init", enum_name(ModelInit::kPretrained), kLayoutOrigin);
    model_config.set("finetune.output", layout_.model(name).string(), kLayoutOrigin);
    model_config.set("finetune.load_balancing.method", enum_name(lb), kLayoutOrigin);
    std::vector<std::string> needs = {"prepare"};
    if (model.dense) {
      needs.insert(needs.end(), base_needs_.begin(), base_needs_.end());
    } else {
      needs.push_back(model.supervised_router ? ExperimentDirectory::router_step(model.method, model.router_loss)
                                              : ExperimentDirectory::method_step("merge", model.method));
    }
    PipelineStep step = new_step(name, Stage::kFinetune, "finetune", needs, layout_.model(name), model_config);
    step.trains_moe = !model.dense;
    parse_finetune_settings(model_config);
    parse_train_settings(model_config, step.train_section);
    step.settings = hashed_settings(model_config, "finetune");
    // The step's name says its init; its LB method is hashed, and the LB parameters only where LB is on.
    step.settings["finetune.load_balancing.method"] = enum_name(lb);
    if (!model.load_balanced) {
      for (const char* key : {"alpha", "pooling", "aux_free_rate"}) {
        step.settings.erase(std::string("finetune.load_balancing.") + key);
      }
    }
    add_train_settings(step.settings, model_config, step.train_section);
    if (model.dense) base_identity(step.settings);
    step.settings["runtime.seed"] = seed_;
    add(std::move(step));
    model_steps_.push_back(name);
  }

  // §5: every model's metrics (and the BTM ensemble's experts, `ensemble_experts`, if any).
  void add_eval(const std::string& ensemble_experts) {
    PipelineStep eval = new_step("eval", Stage::kEval, "", model_steps_, layout_.eval(), config_);
    eval.needs.push_back("prepare");
    if (!ensemble_experts.empty()) eval.needs.push_back(ensemble_experts);
    parse_eval_settings(config_);
    eval.settings = hashed_settings(config_, "eval");
    eval.settings["run.models"] = model_steps_;
    eval.settings["run.btm_ensemble"] = run_.btm_ensemble;
    if (ensemble_experts == "pair_experts") eval.settings["run.btm_coverage"] = enum_name(run_.btm_coverage);
    if (!run_.btm_ensemble) eval.settings.erase("eval.btm.weighting");
    add(std::move(eval));
  }

  // The report lives in eval/ (report.html) and reads the runs' metrics and the eval's numbers.
  void add_report() {
    PipelineStep report = new_step("report", Stage::kReport, "", {"eval"}, layout_.report(), config_);
    report.needs.insert(report.needs.end(), model_steps_.begin(), model_steps_.end());
    parse_report_settings(config_);
    report.settings = hashed_settings(config_, "report");
    add(std::move(report));
  }

 private:
  void add(PipelineStep step) {
    step.hash = step_hash(step, steps_);
    steps_.push_back(std::move(step));
  }
  // A given base model is an input of the experts, of a merge that reads it and of Dense: named
  // by its path and config (a pretrained base is a step, in their needs instead).
  void base_identity(Json& settings) const {
    if (run_.pretrain_base) return;
    settings["run.base_model"] = run_.base_model.string();
    settings["run.base_model/config.json"] = given_base_;
  }

  const ConfigTree& config_;
  const RunSettings& run_;
  const ExperimentDirectory layout_;
  const std::int64_t num_experts_;
  const Json seed_;
  Json given_base_;  // a given base model's config.json (read_given_base)
  std::vector<PipelineStep> steps_;
  std::vector<std::string> base_needs_;  // what a step that trains the base model's weights needs
  std::vector<std::string> model_steps_;
  std::map<MergeMethod, ConfigTree> method_configs_;
};

// The _lb rows need an MoE whose architecture balances something (not a soft MoE).
void check_load_balanced_rows(const ConfigTree& config, const RunSettings& run) {
  const MoeKind moe_kind = SettingReader(config).option<MoeKind>("merge.moe_kind");
  const Architecture merged = merged_architecture(
      moe_kind, SettingReader(config).option<SharedExpertInit>("merge.shared_expert") != SharedExpertInit::kNone);
  if (architecture_row(merged).load_balances) return;
  for (const RunModel& model : run.models) {
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
void check_router_loss_rows(const ConfigTree& config, const RunSettings& run) {
  const RouterLoss configured_loss = SettingReader(config).option<RouterLoss>("train_router.loss");
  for (const auto& [method, loss] : router_trainings_of(run.models)) {
    if (loss == configured_loss) {
      const RunModel plain{false, method, true, false, std::nullopt};
      throw ConfigError("run.models names the stage-3 loss " + std::string(enum_name(*loss)) +
                            ", which train_router.loss already gives every SvMoE row",
                        "write '" + run_model_name(plain) + "' (or its _lb row) instead");
    }
  }
}

}  // namespace

std::vector<PipelineStep> pipeline_steps(const ConfigTree& experiment) {
  const RunSettings run = parse_run_settings(experiment);
  const std::int64_t num_experts = SettingReader(experiment).integer("prepare.num_subdomains");
  if (num_experts < 2) {
    throw ConfigError("config key 'prepare.num_subdomains' is " + std::to_string(num_experts) +
                          "; svmoe run builds a mixture of experts, one per subdomain",
                      "set prepare.num_subdomains to 2 or more");
  }
  const ConfigTree config = layout_config(experiment, run, num_experts);
  parse_runtime_settings(config);
  PipelineBuilder pipeline(config, run, num_experts);

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
  check_load_balanced_rows(config, run);
  // Stage 2, one MoE per merge method the models use; stage 3, for each MoE (and loss, where a
  // row names one) that a model with a supervised router starts from.
  for (const MergeMethod method : methods_of(run.models)) pipeline.add_merge(method);
  check_router_loss_rows(config, run);
  for (const auto& [method, loss] : router_trainings_of(run.models)) pipeline.add_router(method, loss);
  for (const RunModel& model : run.models) pipeline.add_model(model);
  if (!run.models.empty()) {
    pipeline.add_eval(!run.btm_ensemble ? "" : btm_pairs ? "pair_experts" : "experts");
    pipeline.add_report();
  }
  return pipeline.take_steps();
}

}  // namespace svmoe
