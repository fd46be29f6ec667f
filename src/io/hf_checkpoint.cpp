#include "svmoe/io/hf_checkpoint.h"

#include <torch/torch.h>

#include <cstdio>
#include <set>

#include "svmoe/io/hf_config.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

const char* kSingleFile = "model.safetensors";
const char* kIndexFile = "model.safetensors.index.json";

// Tensors that older checkpoints carry but that are recomputed, not learned.
bool is_known_leftover(const std::string& name) { return parameter_names::is_rotary_buffer(name); }

// svmoe before the Soft MoE had a block of its own stored a zero selection bias for it in
// svmoe_state.safetensors; such a bias changes nothing and is skipped where the model has none.
bool is_zero_selection_bias(const std::string& name, const SafetensorsFile& state) {
  const std::string suffix = ".selection_bias";
  if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  return state.tensor(name).count_nonzero().item<std::int64_t>() == 0;
}

std::string shard_name(std::size_t index, std::size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

std::string list_some(const std::vector<std::string>& names) {
  std::vector<std::string> shown(names.begin(), names.begin() + std::min<std::size_t>(names.size(), 5));
  std::string text = join(shown, ", ");
  if (names.size() > shown.size()) text += " and " + std::to_string(names.size() - shown.size()) + " more";
  return text;
}

// Newer transformers versions save Mixtral's (and Qwen2-MoE's) experts fused per layer:
//   model.layers.L.mlp.gate.weight [N, h]                  = block_sparse_moe.gate.weight
//   model.layers.L.mlp.experts.gate_up_proj [N, 2f, h]     = w1 (rows 0..f) and w3 (rows f..2f) of each expert
//   model.layers.L.mlp.experts.down_proj [N, h, f]         = w2 of each expert
// (the transposed [N, h, 2f] / [N, f, h] orientations are read too). Returns the classic-named
// tensor `name` taken from the fused ones, marking them used, or an undefined tensor.
torch::Tensor from_fused_experts(const std::string& name, const HfCheckpoint& checkpoint, std::set<std::string>& used) {
  namespace names = parameter_names;
  const auto& tensors = checkpoint.tensors;
  const std::int64_t h = checkpoint.config.hidden_size;
  const std::int64_t f = checkpoint.config.intermediate_size;
  if (const auto layer = names::parse_router(name)) {
    const std::string fused = names::fused_router(*layer);
    if (!tensors.contains(fused)) return {};
    used.insert(fused);
    return tensors.tensor(fused);
  }
  const auto ffn = names::parse_expert_ffn(name);
  if (!ffn) return {};
  const std::int64_t expert = ffn->expert;
  const bool down = ffn->projection == names::FfnProjection::kDown;
  const std::string fused = down ? names::fused_experts_down(ffn->layer) : names::fused_experts_gate_up(ffn->layer);
  if (!tensors.contains(fused)) return {};
  used.insert(fused);
  torch::Tensor all = tensors.tensor(fused);
  if (all.dim() != 3 || expert >= all.size(0)) {
    throw FormatError("'" + checkpoint.directory.string() + "': fused tensor '" + fused + "' has shape " +
                      c10::str(all.sizes()) + ", which does not hold expert " + std::to_string(expert));
  }
  torch::Tensor one = all[expert];
  if (down) {
    if (one.sizes() == torch::IntArrayRef{f, h} && f != h) one = one.t();  // [f, h] orientation
    return one;                                                            // [h, f]
  }
  if (one.sizes() == torch::IntArrayRef{h, 2 * f} && h != 2 * f) one = one.t();     // [h, 2f] orientation
  return one.narrow(0, ffn->projection == names::FfnProjection::kGate ? 0 : f, f);  // [f, h]
}

}  // namespace

const std::vector<std::string>& files_kept_from_the_source_model() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> files = tokenizer_file_names();
    files.push_back("generation_config.json");
    return files;
  }();
  return names;
}

// Either layout transformers saves: one model.safetensors, or shards listed by
// model.safetensors.index.json's weight_map (tensor -> file). Every shard is opened (mapped, its
// header checked) once, and each listed tensor must be in the shard the index names, so a
// mismatched index fails here rather than as a missing weight later.
CheckpointTensors CheckpointTensors::open(const fs::path& directory) {
  CheckpointTensors result;
  const fs::path index_path = directory / kIndexFile;
  const fs::path single_path = directory / kSingleFile;
  if (fs::exists(index_path)) {
    Json index;
    try {
      index = Json::parse(read_text_file(index_path));
    } catch (const Json::parse_error& e) {
      throw FormatError("'" + index_path.string() + "' is not valid JSON: " + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
      throw FormatError("'" + index_path.string() + "' has no \"weight_map\" object");
    }
    std::map<std::string, std::size_t> file_index;
    for (auto it = index.at("weight_map").begin(); it != index.at("weight_map").end(); ++it) {
      if (!it.value().is_string())
        throw FormatError("'" + index_path.string() + "': weight_map[\"" + it.key() + "\"] is not a file name");
      const std::string file = it.value().get<std::string>();
      // A shard name is a file beside the index: no path may lead out of the checkpoint.
      if (file.find('/') != std::string::npos || file == ".." || file.empty()) {
        throw FormatError("'" + index_path.string() + "': shard name '" + file + "' is not a plain file name");
      }
      if (!file_index.count(file)) {
        const fs::path shard = directory / file;
        if (!fs::exists(shard)) {
          throw IoError("shard '" + shard.string() + "', listed in '" + index_path.string() + "', is missing",
                        "copy all shards of the checkpoint into the directory");
        }
        file_index[file] = result.files_.size();
        result.files_.push_back(SafetensorsFile::open(shard));
      }
      const std::size_t i = file_index[file];
      if (!result.files_[i].contains(it.key())) {
        throw FormatError("'" + index_path.string() + "' places tensor '" + it.key() + "' in '" + file +
                          "', but that shard does not hold it");
      }
      result.location_[it.key()] = i;
    }
  } else if (fs::exists(single_path)) {
    result.files_.push_back(SafetensorsFile::open(single_path));
    for (const auto& entry : result.files_.front().entries()) result.location_[entry.name] = 0;
  } else {
    throw IoError("'" + directory.string() + "' holds neither " + kSingleFile + " nor " + kIndexFile,
                  "give a Hugging Face checkpoint directory saved with safetensors");
  }
  return result;
}

std::vector<std::string> CheckpointTensors::names() const {
  std::vector<std::string> names;
  for (const auto& item : location_) names.push_back(item.first);
  return names;
}

const TensorEntry& CheckpointTensors::entry(const std::string& name) const {
  const auto it = location_.find(name);
  if (it == location_.end()) throw FormatError("the checkpoint has no tensor named '" + name + "'");
  return files_[it->second].entry(name);
}

torch::Tensor CheckpointTensors::tensor(const std::string& name) const {
  const auto it = location_.find(name);
  if (it == location_.end()) throw FormatError("the checkpoint has no tensor named '" + name + "'");
  return files_[it->second].tensor(name);
}

void CheckpointTensors::release(const std::string& name) const {
  const auto it = location_.find(name);
  if (it != location_.end()) files_[it->second].release(name);
}

HfCheckpoint load_hf_checkpoint(const fs::path& directory) {
  if (!fs::is_directory(directory)) {
    throw IoError("checkpoint directory '" + directory.string() + "' does not exist",
                  "give the directory that holds config.json and model.safetensors");
  }
  HfCheckpoint checkpoint;
  checkpoint.directory = directory;
  checkpoint.raw_config = read_model_config_json(directory);
  checkpoint.config = parse_model_config(checkpoint.raw_config, model_config_file(directory).string());
  checkpoint.tensors = CheckpointTensors::open(directory);
  return checkpoint;
}

// Three passes, each strict so that a wrong checkpoint fails loudly instead of running with
// initial weights: every parameter the module registered must be found (by its Hugging Face
// name, or in the fused expert layout) with its shape; svmoe_state.safetensors fills the
// buffers; and every tensor of the checkpoint must have been used (known leftovers such as
// rotary inverse frequencies, and a tied lm_head, excepted).
void load_weights(torch::nn::Module& module, const HfCheckpoint& checkpoint) {
  torch::NoGradGuard no_grad;
  const auto parameters = module.named_parameters(/*recurse=*/true);
  std::vector<std::string> missing;
  std::set<std::string> used;
  for (const auto& item : parameters) {
    torch::Tensor stored;
    if (checkpoint.tensors.contains(item.key())) {
      stored = checkpoint.tensors.tensor(item.key());
      used.insert(item.key());
    } else if (checkpoint.config.is_moe()) {
      stored = from_fused_experts(item.key(), checkpoint, used);
    }
    if (!stored.defined()) {
      missing.push_back(item.key());
      continue;
    }
    torch::Tensor parameter = item.value();
    if (stored.sizes() != parameter.sizes()) {
      throw FormatError("'" + checkpoint.directory.string() + "': tensor '" + item.key() + "' has shape " +
                            c10::str(stored.sizes()) + " but config.json implies " + c10::str(parameter.sizes()),
                        "config.json and the weights do not belong together");
    }
    parameter.copy_(stored);
  }
  if (!missing.empty()) {
    throw FormatError("'" + checkpoint.directory.string() + "' lacks " + std::to_string(missing.size()) +
                          " weight(s) the model needs: " + list_some(missing),
                      std::string("the checkpoint does not match its config.json (or is not a ") +
                          checkpoint.config.model_type() + " model)");
  }
  const fs::path state_path = checkpoint.directory / kSvmoeStateFile;
  if (fs::exists(state_path)) {
    const SafetensorsFile state = SafetensorsFile::open(state_path);
    auto buffers = module.named_buffers(/*recurse=*/true);
    for (const auto& entry : state.entries()) {
      torch::Tensor* buffer = buffers.find(entry.name);
      if (buffer == nullptr && is_zero_selection_bias(entry.name, state)) continue;
      if (buffer == nullptr) {
        throw FormatError("'" + state_path.string() + "' holds '" + entry.name + "', which the model has no buffer for",
                          "the file belongs to another model; remove it or restore the matching checkpoint");
      }
      const torch::Tensor stored = state.tensor(entry.name);
      if (stored.sizes() != buffer->sizes()) {
        throw FormatError("'" + state_path.string() + "': '" + entry.name + "' has shape " + c10::str(stored.sizes()) +
                          " but the model's is " + c10::str(buffer->sizes()));
      }
      buffer->copy_(stored);
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& name : checkpoint.tensors.names()) {
    if (used.count(name) || is_known_leftover(name)) continue;
    if (name == parameter_names::kLmHead && checkpoint.config.tie_word_embeddings)
      continue;  // transformers ignores it too
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    throw FormatError("'" + checkpoint.directory.string() + "' holds " + std::to_string(unexpected.size()) +
                          " weight(s) svmoe's " + checkpoint.config.model_type() +
                          " model has no place for: " + list_some(unexpected),
                      "the checkpoint's architecture differs from what its config.json says");
  }
}

std::vector<NamedTensor> named_buffers(const torch::nn::Module& module) {
  std::vector<NamedTensor> tensors;
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    tensors.push_back({item.key(), item.value().detach()});
  return tensors;
}

std::vector<NamedTensor> named_tensors(const torch::nn::Module& module) {
  std::vector<NamedTensor> tensors;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    tensors.push_back({item.key(), item.value().detach()});
  }
  return tensors;
}

void write_sharded_safetensors(const fs::path& directory, const std::vector<TensorSpec>& specs,
                               const std::function<torch::Tensor(const TensorSpec&)>& produce,
                               std::uint64_t max_shard_bytes) {
  // Shards are filled in name order up to max_shard_bytes each (a tensor larger than that gets a
  // shard of its own), named model-0000K-of-0000N.safetensors beside an index; a single shard is
  // model.safetensors without an index. `produce` makes each tensor when its shard is written, so the
  // merge never holds the whole MoE in memory.
  std::vector<TensorSpec> ordered = specs;
  std::sort(ordered.begin(), ordered.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  std::vector<std::vector<TensorSpec>> shards(1);
  std::uint64_t shard_bytes = 0;
  std::uint64_t total_bytes = 0;
  for (const auto& spec : ordered) {
    if (!shards.back().empty() && shard_bytes + spec.bytes() > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(spec);
    shard_bytes += spec.bytes();
    total_bytes += spec.bytes();
  }
  auto write_shard = [&](const fs::path& path, const std::vector<TensorSpec>& shard) {
    SafetensorsWriter writer(path, shard);
    for (const auto& spec : writer.specs()) writer.write(produce(spec));
    writer.commit();
  };
  if (shards.size() == 1) {
    write_shard(directory / kSingleFile, shards.front());
    return;
  }
  Json weight_map = Json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i, shards.size());
    write_shard(directory / name, shards[i]);
    for (const auto& spec : shards[i]) weight_map[spec.name] = name;
  }
  const Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  write_file_atomically(directory / kIndexFile, index.dump(2) + "\n");
}

void write_sharded_safetensors(const fs::path& directory, const std::vector<NamedTensor>& tensors,
                               std::uint64_t max_shard_bytes) {
  std::vector<TensorSpec> specs;
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& t : tensors) {
    specs.push_back({t.name, t.tensor.scalar_type(), t.tensor.sizes().vec()});
    by_name[t.name] = &t.tensor;
  }
  write_sharded_safetensors(
      directory, specs, [&](const TensorSpec& spec) { return *by_name.at(spec.name); }, max_shard_bytes);
}

// Everything is written into a partial directory beside the target (util/files.h,
// begin_directory) and renamed into place by commit(); a writer destroyed before commit (by an
// exception) removes the partial one, so the target is the old directory or the whole new one.
HfCheckpointWriter::HfCheckpointWriter(fs::path directory)
    : directory_(std::move(directory)), partial_(begin_directory(directory_)) {}

HfCheckpointWriter::~HfCheckpointWriter() {
  if (committed_) return;
  std::error_code ec;  // cleaning up after an error: that error is the one to report
  fs::remove_all(partial_, ec);
}

void HfCheckpointWriter::write_config(const ModelConfig& config, const Json& base_config) {
  write_file_atomically(model_config_file(partial_), model_config_to_json(config, base_config).dump(2) + "\n");
}

void HfCheckpointWriter::write_tensors(const std::vector<NamedTensor>& tensors, std::uint64_t max_shard_bytes) {
  write_sharded_safetensors(partial_, tensors, max_shard_bytes);
}

void HfCheckpointWriter::write_tensors(const std::vector<TensorSpec>& specs,
                                       const std::function<torch::Tensor(const TensorSpec&)>& produce,
                                       std::uint64_t max_shard_bytes) {
  write_sharded_safetensors(partial_, specs, produce, max_shard_bytes);
}

void HfCheckpointWriter::write_svmoe_state(const std::vector<NamedTensor>& buffers) {
  write_safetensors(partial_ / kSvmoeStateFile, buffers);
}

void HfCheckpointWriter::copy_tokenizer(const fs::path& from) {
  for (const auto& name : files_kept_from_the_source_model()) {
    const fs::path source = from / name;
    if (fs::exists(source)) fs::copy_file(source, partial_ / name, fs::copy_options::overwrite_existing);
  }
}

void HfCheckpointWriter::write_json(const std::string& name, const Json& content) {
  write_file_atomically(partial_ / name, content.dump(2) + "\n");
}

void HfCheckpointWriter::commit() {
  commit_directory(directory_);
  committed_ = true;
}

void save_hf_checkpoint(const fs::path& directory, const ModelConfig& config, const std::vector<NamedTensor>& tensors,
                        const SaveOptions& options, const Json& base_config) {
  HfCheckpointWriter writer(directory);
  writer.write_config(config, base_config);
  writer.write_tensors(tensors, options.max_shard_bytes);
  if (!options.svmoe_state.empty()) writer.write_svmoe_state(options.svmoe_state);
  if (!options.copy_tokenizer_from.empty()) writer.copy_tokenizer(options.copy_tokenizer_from);
  writer.commit();
}

}  // namespace svmoe
