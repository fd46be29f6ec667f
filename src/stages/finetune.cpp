#include "svmoe/stages/finetune.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/train/objectives.h"

namespace svmoe {
namespace fs = std::filesystem;

TrainResult run_finetune(const FinetuneSettings& f, const TrainSettings& t, const RuntimeSettings& runtime,
                         const TrainingContext& context) {
  const DatasetShards shards = dataset_shards(f.dataset, f.subdomains);
  TrainingJob job = training_job(f.model, f.init, shards, f.output, runtime, context);
  if (!f.subdomain_weights.empty()) {
    job.train_sources.clear();
    for (std::size_t i = 0; i < shards.train.size(); ++i) {
      job.train_sources.push_back({{shards.train[i]}, f.subdomain_weights[i]});
    }
  }
  const LoadBalancingSettings& lb = f.load_balancing;
  job.objective = std::make_shared<LanguageModelObjective>(job.model->config(), lb);
  const ModelConfig& config = job.model->config();
  // The checkpoint records the LB coefficient it was trained with (the merge wrote transformers' default).
  if (config.is_moe() && lb.method == LoadBalancingMethod::kSwitch) job.router_aux_loss_coef = lb.alpha;
  spdlog::info("finetune: {} ({}{}, {} parameters) on {} subdomain(s) of {} -> {}", f.model.string(), enum_name(f.init),
               config.is_moe() ? std::string(", MoE, load balancing ") + enum_name(lb.method) : std::string(", dense"),
               parameter_count(config), shards.train.size(), f.dataset.string(), f.output.string());

  TrainResult result = train_model(job, t);
  if (!result.interrupted) save_final_model(job);
  return result;
}

}  // namespace svmoe
