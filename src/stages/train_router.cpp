#include "svmoe/stages/train_router.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/hf_config.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/model/moe.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

// Stage 3 trains the routers alone (SPEC.md §4, stage 3): every other parameter is frozen, so
// the experts stay what stage 1 made them and only the choice among them is learnt.
std::size_t train_only_routers(CausalLM& model) {
  std::size_t routers = 0;
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const bool router = parameter_names::is_router(item.key());
    item.value().set_requires_grad(router);
    routers += router ? 1 : 0;
  }
  return routers;
}

TrainResult run_train_router(const TrainRouterSettings& s, const TrainSettings& t, const RuntimeSettings& runtime,
                             const TrainingContext& context) {
  const ModelConfig config = read_model_config(s.model);
  if (!config.is_moe()) {
    throw ConfigError("'" + s.model.string() + "' is a dense model (model_type " + config.model_type() +
                          "); train-router trains the routers of an MoE",
                      "merge the experts first (svmoe merge) and point train_router.model to its output");
  }
  // The targets: for each vocabulary id, its TF-IDF distribution over the subdomains (prepare
  // wrote tfidf.safetensors; SPEC.md §3); expert n is the expert of subdomain n, so the counts
  // must agree.
  const DatasetShards shards = dataset_shards(s.dataset, {});
  const TfidfTargetTensors tfidf = load_tfidf_targets(s.dataset, config.vocab_size, s.teacher);
  const std::int64_t subdomains = tfidf.targets.size(1);
  if (subdomains != config.num_local_experts) {
    throw ConfigError("the dataset '" + s.dataset.string() + "' has " + std::to_string(subdomains) +
                          " subdomains but the MoE '" + s.model.string() + "' has " +
                          std::to_string(config.num_local_experts) + " experts",
                      "use the dataset the experts were trained on (expert n on subdomain n)");
  }

  // The training loop is the shared one (train/trainer.h); what it minimises is the router
  // supervision loss per routed sub-layer (train/objectives.h), not the LM loss.
  TrainingJob job = training_job(s.model, ModelInit::kPretrained, shards, s.output, runtime, context);
  const std::size_t routers = train_only_routers(job.model);
  set_detach_router_inputs(*job.model, s.detach_router_inputs);
  job.objective = std::make_shared<RouterSupervisionObjective>(tfidf.targets, tfidf.has_target, s.missing_target,
                                                               s.loss, config.num_routers());
  spdlog::info(
      "train-router: the {} routers of {} ({} experts, top-{}) against the TF-IDF targets of {} (loss {}; teacher from "
      "the {}, {} tf; untargeted tokens: {}{}) -> {}",
      routers, s.model.string(), config.num_local_experts, config.num_experts_per_tok, s.dataset.string(),
      enum_name(s.loss), s.teacher.split == TeacherSplit::kAll ? "whole subdomains" : "training splits",
      enum_name(s.teacher.tf), enum_name(s.missing_target),
      s.detach_router_inputs ? "; each router from its own term" : "", s.output.string());
  TrainResult result = train_model(job, t);
  if (!result.interrupted) save_final_model(job);
  return result;
}

}  // namespace svmoe
