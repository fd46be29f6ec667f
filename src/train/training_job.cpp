#include "svmoe/train/training_job.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/model/device.h"
#include "svmoe/model/initialization.h"
#include "svmoe/model/moe.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/logging.h"

namespace svmoe {
namespace fs = std::filesystem;

TrainingContext start_training(const RuntimeSettings& runtime) {
  const DistributedEnvironment environment = detect_distributed_environment();
  TrainingContext context;
  context.device = resolve_device(runtime.device);
  // Data parallel on GPUs: one GPU per rank, cuda:LOCAL_RANK, checked against the GPUs this
  // task can see (a Slurm step may see fewer than the node has).
  if (context.device.is_cuda() && environment.world_size > 1) {
    const int gpu = local_gpu_index(environment.local_rank, static_cast<int>(torch::cuda::device_count()));
    context.device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(gpu));
  }
  if (environment.world_size > 1) set_log_rank(environment.rank);
  context.group =
      ProcessGroup::connect(environment, context.device, std::chrono::seconds(runtime.distributed_timeout_s));
  return context;
}

TrainingJob training_job(const fs::path& model_dir, ModelInit init, const DatasetShards& shards, const fs::path& output,
                         const RuntimeSettings& runtime, const TrainingContext& context) {
  const ModelConfig config = read_model_config(model_dir);
  // Token ids past the embedding table would index out of bounds deep in the forward pass: the
  // mismatch is caught here, where its cause (another tokenizer) can be named.
  if (shards.vocab_size > config.vocab_size) {
    throw ConfigError("the dataset's tokenizer has " + std::to_string(shards.vocab_size) + " tokens but the model '" +
                          model_dir.string() + "' only " + std::to_string(config.vocab_size),
                      "prepare the data with the model's own tokenizer");
  }
  // The seed before any weight exists: a random init (the base, Dense from scratch) is the same
  // on every rank, and again in a rerun.
  torch::manual_seed(runtime.seed);
  TrainingJob job;
  job.model = CausalLM(config);
  if (init == ModelInit::kRandom) {
    initialize_weights(*job.model, config.initializer_range, runtime.seed);
  } else {
    load_weights(*job.model, load_hf_checkpoint(model_dir));
  }
  set_expert_path(*job.model, runtime.expert_path);
  job.base_config = read_model_config_json(model_dir);
  job.tokenizer_from = tokenizer_source(model_dir, shards.tokenizer);
  job.train_sources = {SamplerSource{shards.train, 1.0}};
  job.valid_shards = shards.valid;
  job.output = output;
  job.tensorboard = runtime.tensorboard;
  job.seed = runtime.seed;
  job.device = context.device;
  job.group = context.group;
  return job;
}

void save_final_model(TrainingJob& job) {
  if (job.group.is_main()) {
    save_model(job, RunDirectory(job.output).final_model());
    spdlog::info("wrote {}", RunDirectory(job.output).final_model().string());
  }
  job.group.barrier();
}

}  // namespace svmoe
