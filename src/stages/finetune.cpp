#include "svmoe/stages/finetune.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/model/device.h"
#include "svmoe/model/initialization.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

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

TrainResult run_finetune(const FinetuneSettings& f, const TrainSettings& t, const RuntimeSettings& runtime) {
  const ModelConfig config = read_model_config(f.model / "config.json");
  const DatasetShards shards = dataset_shards(f.dataset, f.subdomains);
  if (shards.vocab_size > config.vocab_size) {
    throw ConfigError("the dataset's tokenizer has " + std::to_string(shards.vocab_size) + " tokens but the model '" +
                          f.model.string() + "' only " + std::to_string(config.vocab_size),
                      "prepare the data with the model's own tokenizer");
  }
  const torch::Device device = resolve_device(runtime.device);
  if (device.is_cuda()) {
    throw UnsupportedError("training on CUDA is not built yet", "train with --device cpu for now");
  }
  torch::manual_seed(runtime.seed);

  TrainingJob job;
  job.model = CausalLM(config);
  if (f.init == "pretrained") {
    load_weights(*job.model, load_hf_checkpoint(f.model));
    job.base_config = nlohmann::json::parse(read_text_file(f.model / "config.json"));
  } else {
    initialize_weights(*job.model, config.initializer_range, runtime.seed);
    job.base_config = nlohmann::json::parse(read_text_file(f.model / "config.json"));
  }
  job.tokenizer_from =
      fs::exists(f.model / "tokenizer.json") || fs::exists(f.model / "tokenizer.model") ? f.model : shards.tokenizer;
  job.train_shards = shards.train;
  job.valid_shards = shards.valid;
  job.output = f.output;
  job.seed = runtime.seed;
  spdlog::info("finetune: {} ({}, {} parameters) on {} subdomain(s) of {} -> {}", f.model.string(), f.init,
               config.num_parameters(), shards.train.size(), f.dataset.string(), f.output.string());

  TrainResult result = train_causal_lm(job, t);
  if (!result.interrupted) {
    SaveOptions options;
    options.copy_tokenizer_from = job.tokenizer_from;
    options.svmoe_state = named_buffers(*job.model);
    save_hf_checkpoint(f.output / "final", config, named_tensors(*job.model), options, job.base_config);
    spdlog::info("finetune: wrote {}", (f.output / "final").string());
  }
  return result;
}

}  // namespace svmoe
