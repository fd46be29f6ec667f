#include "svmoe/stages/finetune.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/model/device.h"
#include "svmoe/model/initialization.h"
#include "svmoe/model/moe.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/logging.h"

namespace svmoe {
namespace fs = std::filesystem;

DatasetShards dataset_shards(const fs::path& dataset, const std::vector<std::int64_t>& subdomains) {
  const fs::path manifest_path = dataset / "manifest.json";
  if (!fs::exists(manifest_path)) {
    throw IoError("'" + dataset.string() + "' is not a prepared dataset: it has no manifest.json",
                  "run svmoe prepare first, and point to its output directory");
  }
  const auto manifest = nlohmann::json::parse(read_text_file(manifest_path));
  if (manifest.value("format", "") != "svmoe-dataset")
    throw FormatError("'" + manifest_path.string() + "' is not an svmoe dataset manifest");
  if (manifest.value("version", 0) > kDatasetFormatVersion) {
    throw FormatError("'" + manifest_path.string() + "' is of dataset format version " +
                          std::to_string(manifest.value("version", 0)) + ", newer than this svmoe reads",
                      "use the svmoe that prepared it, or prepare the data again");
  }
  const auto n = manifest.at("num_subdomains").get<std::int64_t>();
  std::vector<std::int64_t> chosen = subdomains;
  if (chosen.empty()) {
    for (std::int64_t d = 0; d < n; ++d) chosen.push_back(d);
  }
  DatasetShards shards;
  for (const auto d : chosen) {
    if (d >= n) {
      throw ConfigError("subdomain " + std::to_string(d) + " does not exist: the dataset has " + std::to_string(n) +
                        " (0.." + std::to_string(n - 1) + ")");
    }
    shards.train.push_back(shard_prefix(dataset, static_cast<int>(d), "train"));
    shards.valid.push_back(shard_prefix(dataset, static_cast<int>(d), "valid"));
  }
  shards.vocab_size = manifest.at("vocab_size").get<std::int64_t>();
  shards.tokenizer = fs::is_directory(dataset / "tokenizer") ? dataset / "tokenizer" : dataset;
  return shards;
}

TrainingContext start_training(const RuntimeSettings& runtime) {
  const DistributedEnvironment environment = detect_distributed_environment();
  TrainingContext context;
  context.device = resolve_device(runtime.device);
  if (context.device.is_cuda() && environment.world_size > 1) {
    context.device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(environment.local_rank));
  }
  if (environment.world_size > 1) set_log_rank(environment.rank);
  context.group =
      ProcessGroup::connect(environment, context.device, std::chrono::seconds(runtime.distributed_timeout_s));
  return context;
}

TrainingJob training_job(const fs::path& model_dir, bool random_init, const DatasetShards& shards,
                         const fs::path& output, const RuntimeSettings& runtime, const TrainingContext& context) {
  const ModelConfig config = read_model_config(model_dir / "config.json");
  if (shards.vocab_size > config.vocab_size) {
    throw ConfigError("the dataset's tokenizer has " + std::to_string(shards.vocab_size) + " tokens but the model '" +
                          model_dir.string() + "' only " + std::to_string(config.vocab_size),
                      "prepare the data with the model's own tokenizer");
  }
  torch::manual_seed(runtime.seed);
  TrainingJob job;
  job.model = CausalLM(config);
  if (random_init) {
    initialize_weights(*job.model, config.initializer_range, runtime.seed);
  } else {
    load_weights(*job.model, load_hf_checkpoint(model_dir));
  }
  set_expert_path(*job.model, parse_expert_path(runtime.expert_path));
  job.base_config = nlohmann::json::parse(read_text_file(model_dir / "config.json"));
  job.tokenizer_from = tokenizer_source(model_dir, shards.tokenizer);
  job.train_sources = {SamplerSource{shards.train, 1.0}};
  job.valid_shards = shards.valid;
  job.output = output;
  job.seed = runtime.seed;
  job.device = context.device;
  job.group = context.group;
  return job;
}

void save_final_model(TrainingJob& job) {
  if (job.group.is_main()) {
    save_model(job, job.output / "final");
    spdlog::info("wrote {}", (job.output / "final").string());
  }
  job.group.barrier();
}

TrainResult run_finetune(const FinetuneSettings& f, const TrainSettings& t, const RuntimeSettings& runtime,
                         const TrainingContext& context) {
  const DatasetShards shards = dataset_shards(f.dataset, f.subdomains);
  TrainingJob job = training_job(f.model, f.init == "random", shards, f.output, runtime, context);
  if (!f.subdomain_weights.empty()) {
    job.train_sources.clear();
    for (std::size_t i = 0; i < shards.train.size(); ++i) {
      job.train_sources.push_back({{shards.train[i]}, f.subdomain_weights[i]});
    }
  }
  LoadBalancingSettings lb;
  lb.method = f.load_balancing.method;
  lb.alpha = f.load_balancing.alpha;
  lb.pooling =
      f.load_balancing.pooling == "per_layer" ? LoadBalancingPooling::kPerLayer : LoadBalancingPooling::kPooled;
  lb.aux_free_rate = f.load_balancing.aux_free_rate;
  job.objective = std::make_shared<LanguageModelObjective>(job.model->config(), lb);
  const ModelConfig& config = job.model->config();
  spdlog::info("finetune: {} ({}{}, {} parameters) on {} subdomain(s) of {} -> {}", f.model.string(), f.init,
               config.is_moe() ? ", MoE, load balancing " + lb.method : std::string(", dense"), config.num_parameters(),
               shards.train.size(), f.dataset.string(), f.output.string());

  TrainResult result = train_model(job, t);
  if (!result.interrupted) save_final_model(job);
  return result;
}

}  // namespace svmoe
