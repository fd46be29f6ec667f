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

}  // namespace

std::vector<PipelineStep> pipeline_steps(const ConfigTree& experiment) {
  const RunSettings run = parse_run_settings(experiment);
  const ExperimentDirectory layout(run.dir);
  const std::int64_t num_experts = SettingReader(experiment).integer("prepare.num_subdomains");
  if (num_experts < 2) {
    throw ConfigError("config key 'prepare.num_subdomains' is " + std::to_string(num_experts) +
                          "; svmoe run builds a mixture of experts, one per subdomain",
                      "set prepare.num_subdomains to 2 or more");
  }
  const ConfigTree config = layout_config(experiment, run, num_experts);
  // Every step's settings are checked now, so that a bad key stops the run before hours of work.
  parse_runtime_settings(config);

  std::vector<PipelineStep> steps;
  const auto add = [&](PipelineStep step) {
    step.hash = step_hash(step, steps);
    steps.push_back(std::move(step));
  };
  const Json seed = config.at("runtime.seed");

  PipelineStep prepare = new_step("prepare", Stage::kPrepare, "", {}, layout.dataset(), config);
  parse_prepare_settings(config);
  prepare.settings = hashed_settings(config, "prepare");
  prepare.settings["runtime.seed"] = seed;
  add(std::move(prepare));

  std::vector<std::string> base_needs;  // what a step that trains the base model's weights needs
  if (run.pretrain_base) {
    ConfigTree base_config = config;
    base_config.set("finetune.model", run.base_model.string(), kLayoutOrigin);
    base_config.set("finetune.init", enum_name(ModelInit::kRandom), kLayoutOrigin);
    base_config.set("finetune.subdomains", Json::array(), kLayoutOrigin);
    base_config.set("finetune.subdomain_weights", Json::array(), kLayoutOrigin);
    base_config.set("finetune.load_balancing.method", enum_name(LoadBalancingMethod::kNone), kLayoutOrigin);
    base_config.set("finetune.output", layout.base().string(), kLayoutOrigin);
    PipelineStep base =
        new_step("base", Stage::kFinetune, "run.pretrain_base", {"prepare"}, layout.base(), base_config);
    parse_train_settings(base_config, base.train_section);
    base.settings["run.base_model"] = run.base_model.string();
    base.settings["run.base_model/config.json"] = base_model_config(run.base_model);
    add_train_settings(base.settings, base_config, base.train_section);
    base.settings["runtime.seed"] = seed;
    add(std::move(base));
    base_needs.push_back("base");
  }
  // A given base model is an input of the experts and of Dense: named by its path and config.
  const Json given_base = run.pretrain_base ? Json() : base_model_config(run.base_model);
  const auto base_identity = [&](Json& settings) {
    if (run.pretrain_base) return;
    settings["run.base_model"] = run.base_model.string();
    settings["run.base_model/config.json"] = given_base;
  };

  // Stage 1 only where a model merges trained experts, or the BTM ensemble reads them; the
  // ensemble's experts of two subdomains each (Monju) are a step of their own.
  const bool btm_pairs = run.btm_ensemble && run.btm_coverage == ExpertCoverage::kPairs;
  const bool needs_experts =
      (run.btm_ensemble && !btm_pairs) || std::any_of(run.models.begin(), run.models.end(), [](const RunModel& m) {
        return !m.dense && merge_method_spec(m.method).merges_trained_experts();
      });
  const auto add_experts_step = [&](const std::string& name, ExpertCoverage coverage, const fs::path& output) {
    ConfigTree experts_config = config;
    experts_config.set("train_experts.coverage", enum_name(coverage), kLayoutOrigin);
    experts_config.set("train_experts.output", output.string(), kLayoutOrigin);
    PipelineStep experts = new_step(name, Stage::kTrainExperts, "train_experts", {"prepare"}, output, experts_config);
    experts.needs.insert(experts.needs.end(), base_needs.begin(), base_needs.end());
    experts.tasks = static_cast<std::int64_t>(expert_subdomains(coverage, num_experts).size());
    parse_train_experts_settings(experts_config);
    parse_train_settings(experts_config, experts.train_section);
    experts.settings = hashed_settings(experts_config, "train_experts");
    if (coverage != ExpertCoverage::kSubdomains) experts.settings["train_experts.coverage"] = enum_name(coverage);
    add_train_settings(experts.settings, experts_config, experts.train_section);
    base_identity(experts.settings);
    experts.settings["runtime.seed"] = seed;
    add(std::move(experts));
  };
  if (needs_experts) add_experts_step("experts", ExpertCoverage::kSubdomains, layout.experts());
  if (btm_pairs) add_experts_step("pair_experts", ExpertCoverage::kPairs, layout.pair_experts());

  // The merge's architecture decides whether the _lb rows can balance anything.
  const MoeKind moe_kind = SettingReader(config).option<MoeKind>("merge.moe_kind");
  const Architecture merged = merged_architecture(
      moe_kind, SettingReader(config).option<SharedExpertInit>("merge.shared_expert") != SharedExpertInit::kNone);
  if (!architecture_row(merged).load_balances) {
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

  // Stage 2, one MoE per merge method the models use.
  std::map<MergeMethod, ConfigTree> method_configs;
  for (const MergeMethod method : methods_of(run.models)) {
    const ConfigTree& moe_config =
        method_configs.emplace(method, method_config(config, run, method, num_experts)).first->second;
    const MergeMethodSpec& spec = merge_method_spec(method);
    const bool trained = spec.merges_trained_experts();
    const bool reads_base = !trained || reads_base_model_beside_experts(moe_config);
    std::vector<std::string> merge_needs = reads_base ? base_needs : std::vector<std::string>{};
    if (trained) merge_needs.push_back("experts");
    PipelineStep merge = new_step(ExperimentDirectory::method_step("merge", method), Stage::kMerge, "", merge_needs,
                                  layout.moe(method), moe_config);
    parse_merge_settings(moe_config);
    merge.settings = hashed_settings(moe_config, "merge");
    merge.settings["merge.method"] = enum_name(method);
    if (!trained) merge.settings["merge.num_experts"] = num_experts;
    // A method's parameters only where it reads them.
    for (const MergeParameter parameter : all_merge_parameters()) {
      if (!spec.reads(parameter)) merge.settings.erase(std::string(merge_parameter_key(parameter)));
    }
    if (reads_base) base_identity(merge.settings);
    merge.settings["runtime.seed"] = seed;
    add(std::move(merge));
  }

  // Stage 3, for each MoE (and loss, where a row names one) that a model with a supervised router
  // starts from.
  const RouterLoss configured_loss = SettingReader(config).option<RouterLoss>("train_router.loss");
  for (const auto& [method, loss] : router_trainings_of(run.models)) {
    if (loss == configured_loss) {
      const RunModel plain{false, method, true, false, std::nullopt};
      throw ConfigError("run.models names the stage-3 loss " + std::string(enum_name(*loss)) +
                            ", which train_router.loss already gives every SvMoE row",
                        "write '" + run_model_name(plain) + "' (or its _lb row) instead");
    }
    ConfigTree router_config = method_configs.at(method);
    if (loss) router_config.set("train_router.loss", enum_name(*loss), kLayoutOrigin);
    router_config.set("train_router.output", layout.router(method, loss).string(), kLayoutOrigin);
    PipelineStep router = new_step(ExperimentDirectory::router_step(method, loss), Stage::kTrainRouter, "train_router",
                                   {ExperimentDirectory::method_step("merge", method), "prepare"},
                                   layout.router(method, loss), router_config);
    router.trains_moe = true;
    parse_train_router_settings(router_config);
    parse_train_settings(router_config, router.train_section);
    router.settings = hashed_settings(router_config, "train_router");
    add_train_settings(router.settings, router_config, router.train_section);
    router.settings["runtime.seed"] = seed;
    add(std::move(router));
  }

  std::vector<std::string> model_steps;
  for (const RunModel& model : run.models) {
    const std::string name = run_model_name(model);
    ConfigTree model_config = config;
    const fs::path from =
        model.dense
            ? base_model_of(run)
            : (model.supervised_router ? RunDirectory(layout.router(model.method, model.router_loss)).final_model()
                                       : layout.moe(model.method));
    const LoadBalancingMethod lb = model.load_balanced ? run.lb_method : LoadBalancingMethod::kNone;
    model_config.set("finetune.model", from.string(), kLayoutOrigin);
    model_config.set("finetune.init", enum_name(ModelInit::kPretrained), kLayoutOrigin);
    model_config.set("finetune.output", layout.model(name).string(), kLayoutOrigin);
    model_config.set("finetune.load_balancing.method", enum_name(lb), kLayoutOrigin);
    std::vector<std::string> needs = {"prepare"};
    if (model.dense) {
      needs.insert(needs.end(), base_needs.begin(), base_needs.end());
    } else {
      needs.push_back(model.supervised_router ? ExperimentDirectory::router_step(model.method, model.router_loss)
                                              : ExperimentDirectory::method_step("merge", model.method));
    }
    PipelineStep step = new_step(name, Stage::kFinetune, "finetune", needs, layout.model(name), model_config);
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
    step.settings["runtime.seed"] = seed;
    add(std::move(step));
    model_steps.push_back(name);
  }

  if (!run.models.empty()) {
    PipelineStep eval = new_step("eval", Stage::kEval, "", model_steps, layout.eval(), config);
    eval.needs.push_back("prepare");
    if (run.btm_ensemble) eval.needs.push_back(btm_pairs ? "pair_experts" : "experts");
    parse_eval_settings(config);
    eval.settings = hashed_settings(config, "eval");
    eval.settings["run.models"] = model_steps;
    eval.settings["run.btm_ensemble"] = run.btm_ensemble;
    if (btm_pairs) eval.settings["run.btm_coverage"] = enum_name(run.btm_coverage);
    if (!run.btm_ensemble) eval.settings.erase("eval.btm.weighting");
    add(std::move(eval));

    // The report lives in eval/ (report.html) and reads the runs' metrics and the eval's numbers.
    PipelineStep report = new_step("report", Stage::kReport, "", {"eval"}, layout.report(), config);
    report.needs.insert(report.needs.end(), model_steps.begin(), model_steps.end());
    parse_report_settings(config);
    report.settings = hashed_settings(config, "report");
    add(std::move(report));
  }
  return steps;
}

}  // namespace svmoe
