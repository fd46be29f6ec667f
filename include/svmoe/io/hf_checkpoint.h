// Hugging Face checkpoint directories: config.json plus model.safetensors, or shards
// (model-0000k-of-0000n.safetensors) listed in model.safetensors.index.json.
// Tensor names are the Hugging Face keys, which are also svmoe's module names, so loading
// and saving a module is a plain name mapping.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/io/safetensors.h"
#include "svmoe/model/model_config.h"

namespace svmoe {

// All tensors of a checkpoint, single-file or sharded; every file is mapped, nothing copied.
class CheckpointTensors {
 public:
  static CheckpointTensors open(const std::filesystem::path& directory);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return location_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;
  void release(const std::string& name) const;  // SafetensorsFile::release
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> location_;  // name -> index into files_
};

struct HfCheckpoint {
  std::filesystem::path directory;
  ModelConfig config;
  nlohmann::json raw_config;  // config.json as read, to keep fields svmoe does not model
  CheckpointTensors tensors;
};

HfCheckpoint load_hf_checkpoint(const std::filesystem::path& directory);

// Copies the checkpoint's tensors into the module's parameters (converting to each
// parameter's dtype and device). Mixtral checkpoints are read in the classic layout
// (block_sparse_moe.gate, .experts.{e}.w1/w2/w3) or the fused one of newer transformers
// (mlp.gate, mlp.experts.gate_up_proj, mlp.experts.down_proj); svmoe writes the classic one. Every parameter must be
// present with its shape, and every checkpoint tensor must belong to a parameter (known leftovers excepted); otherwise
// the error lists what is missing or unexpected.
void load_weights(torch::nn::Module& module, const HfCheckpoint& checkpoint);

// The module's parameters as named tensors, in the module's dtype.
std::vector<NamedTensor> named_tensors(const torch::nn::Module& module);

// svmoe's own state beside the Hugging Face weights: the module's buffers (the aux-free
// selection biases), in `svmoe_state.safetensors`, which transformers and vLLM never read.
inline constexpr const char* kSvmoeStateFile = "svmoe_state.safetensors";
// svmoe merge's record of how an MoE was built (method, its parameters, inputs, router
// initialisation, seed; docs/upcycling.md), beside config.json.
inline constexpr const char* kMergeProvenanceFile = "svmoe_merge.json";
std::vector<NamedTensor> named_buffers(const torch::nn::Module& module);

struct SaveOptions {
  std::uint64_t max_shard_bytes = 5ull << 30;  // transformers' default shard size (5 GB)
  std::filesystem::path copy_tokenizer_from;   // a directory whose tokenizer files to copy, if any
  std::vector<NamedTensor> svmoe_state;        // written to svmoe_state.safetensors when not empty
};

// The one writer of Hugging Face directories (training's checkpoints and final models, svmoe
// merge's MoE): every file goes into DIR.partial, and commit() renames it to DIR, so DIR is the
// old directory or the complete new one, never a mix (util/files.h, begin/commit_directory).
// Destroyed without commit() (an exception on the way), it removes DIR.partial.
class HfCheckpointWriter {
 public:
  explicit HfCheckpointWriter(std::filesystem::path directory);
  ~HfCheckpointWriter();
  HfCheckpointWriter(const HfCheckpointWriter&) = delete;
  HfCheckpointWriter& operator=(const HfCheckpointWriter&) = delete;

  // config.json: `config` over the fields of `base_config` svmoe does not model.
  void write_config(const ModelConfig& config, const nlohmann::json& base_config);
  // The weights (write_sharded_safetensors below), held or made one at a time.
  void write_tensors(const std::vector<NamedTensor>& tensors, std::uint64_t max_shard_bytes);
  void write_tensors(const std::vector<TensorSpec>& specs,
                     const std::function<torch::Tensor(const TensorSpec&)>& produce, std::uint64_t max_shard_bytes);
  void write_svmoe_state(const std::vector<NamedTensor>& buffers);  // kSvmoeStateFile
  // The tokenizer files and generation config `from` holds (files_kept_from_the_source_model()).
  void copy_tokenizer(const std::filesystem::path& from);
  // Another JSON file of the directory (kMergeProvenanceFile).
  void write_json(const std::string& name, const nlohmann::json& content);
  void commit();

 private:
  std::filesystem::path directory_, partial_;
  bool committed_ = false;
};

// Writes config.json, the safetensors file(s) and the index atomically (HfCheckpointWriter).
void save_hf_checkpoint(const std::filesystem::path& directory, const ModelConfig& config,
                        const std::vector<NamedTensor>& tensors, const SaveOptions& options = {},
                        const nlohmann::json& base_config = nlohmann::json::object());

// Writes tensors as one model.safetensors or as shards of at most `max_shard_bytes` (a tensor
// larger than that gets a shard of its own) with model.safetensors.index.json.
void write_sharded_safetensors(const std::filesystem::path& directory, const std::vector<NamedTensor>& tensors,
                               std::uint64_t max_shard_bytes);

// The same, streaming: `specs` announce every tensor, and `produce(spec)` makes each one when
// its shard is written, so only one tensor need exist at a time (how svmoe merge stays small).
void write_sharded_safetensors(const std::filesystem::path& directory, const std::vector<TensorSpec>& specs,
                               const std::function<torch::Tensor(const TensorSpec&)>& produce,
                               std::uint64_t max_shard_bytes);

// The files a checkpoint takes over from the model it was made from: its tokenizer files
// (text/tokenizer.h) and generation_config.json.
const std::vector<std::string>& files_kept_from_the_source_model();

}  // namespace svmoe
