#include "svmoe/stages/merge.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/sha256.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// config.json fields that may differ between experts (provenance, not architecture).
const std::set<std::string> kIgnoredConfigFields = {"_name_or_path", "transformers_version", "architectures",
                                                    "use_cache"};

// The experts must be one architecture with one tokenizer: name the first field that differs.
void check_experts_agree(const std::vector<HfCheckpoint>& experts) {
  const HfCheckpoint& first = experts.front();
  for (const auto& expert : experts) {
    if (expert.config.is_moe()) {
      throw UnsupportedError(
          "expert '" + expert.directory.string() + "' is already an MoE (" + expert.config.model_type + ")",
          "merge dense Llama experts");
    }
    if (expert.config.attention_bias || expert.config.mlp_bias) {
      throw UnsupportedError(
          "expert '" + expert.directory.string() + "' has attention or MLP biases, which Mixtral has no place for",
          "merge experts without attention_bias / mlp_bias");
    }
  }
  for (std::size_t n = 1; n < experts.size(); ++n) {
    const HfCheckpoint& other = experts[n];
    std::set<std::string> keys;
    for (const auto& item : first.raw_config.items()) keys.insert(item.key());
    for (const auto& item : other.raw_config.items()) keys.insert(item.key());
    for (const auto& key : keys) {
      if (kIgnoredConfigFields.count(key)) continue;
      const Json a = first.raw_config.value(key, Json());
      const Json b = other.raw_config.value(key, Json());
      if (a != b) {
        throw ConfigError("experts differ in config.json field \"" + key + "\": " + a.dump() + " in '" +
                              first.directory.string() + "' but " + b.dump() + " in '" + other.directory.string() + "'",
                          "all experts must be trained from one base model with one architecture");
      }
    }
    for (const auto& name : tokenizer_file_names()) {
      if (name == "generation_config.json") continue;
      const bool in_first = fs::exists(first.directory / name);
      const bool in_other = fs::exists(other.directory / name);
      if (in_first != in_other ||
          (in_first && sha256_file_hex(first.directory / name) != sha256_file_hex(other.directory / name))) {
        throw ConfigError("experts differ in their tokenizer: '" + name + "' of '" + first.directory.string() +
                              "' and of '" + other.directory.string() + "' are not the same file",
                          "all experts must share the base model's tokenizer");
      }
    }
    if (first.tensors.names() != other.tensors.names()) {
      throw FormatError("experts '" + first.directory.string() + "' and '" + other.directory.string() +
                        "' hold different sets of tensors although their configs agree");
    }
  }
}

}  // namespace

ModelConfig merged_moe_config(const ModelConfig& dense, std::int64_t experts, const MergeSettings& settings) {
  ModelConfig moe = dense;
  moe.model_type = "mixtral";
  moe.num_local_experts = experts;
  moe.num_experts_per_tok = settings.num_experts_per_tok;
  moe.router_aux_loss_coef = settings.router_aux_loss_coef;
  return moe;
}

namespace {

// Where one tensor of the MoE comes from (SPEC.md §4, stage 2).
struct MergedTensorSource {
  enum class Kind { kMean, kExpert, kRouter } kind;
  std::string name;         // the dense tensor (mean, expert)
  std::int64_t expert = 0;  // which expert (expert)
  std::int64_t layer = 0;   // which layer (router)
};

// Every output tensor in write order, and its source.
struct MergePlan {
  std::vector<TensorSpec> specs;
  std::map<std::string, MergedTensorSource> sources;
};

// BTX: expert n's FFN becomes MoE expert n; every other weight is the mean; one router a layer.
MergePlan plan_btx_merge(const std::vector<HfCheckpoint>& experts) {
  const auto n = static_cast<std::int64_t>(experts.size());
  const CheckpointTensors& first = experts.front().tensors;
  const auto stored_type = [&](const std::string& name) { return to_torch_dtype(first.entry(name).dtype); };
  MergePlan plan;
  for (const auto& name : first.names()) {
    const TensorEntry& entry = first.entry(name);
    if (const auto ffn = parameter_names::parse_dense_ffn(name)) {
      for (std::int64_t e = 0; e < n; ++e) {
        const std::string out = parameter_names::expert_ffn(ffn->layer, e, ffn->projection);
        plan.specs.push_back({out, stored_type(name), entry.shape});
        plan.sources[out] = {MergedTensorSource::Kind::kExpert, name, e, 0};
      }
    } else if (!parameter_names::is_rotary_buffer(name)) {  // a rotary buffer is recomputed, not learned
      plan.specs.push_back({name, stored_type(name), entry.shape});
      plan.sources[name] = {MergedTensorSource::Kind::kMean, name, 0, 0};
    }
  }
  const ModelConfig& dense = experts.front().config;
  for (std::int64_t l = 0; l < dense.num_hidden_layers; ++l) {
    const std::string out = parameter_names::router(l);
    plan.specs.push_back({out, stored_type(parameter_names::kEmbedTokens), {n, dense.hidden_size}});
    plan.sources[out] = {MergedTensorSource::Kind::kRouter, "", 0, l};
  }
  return plan;
}

// The element-wise mean of one tensor over the experts, in float32, in `dtype`. A copy even for
// float32 experts: the mapped tensor itself must stay as stored. Each expert's pages are
// released as soon as they are summed.
torch::Tensor mean_over_experts(const std::vector<HfCheckpoint>& experts, const std::string& name,
                                torch::ScalarType dtype) {
  torch::Tensor sum = experts.front().tensors.tensor(name).to(torch::kFloat32, false, /*copy=*/true);
  experts.front().tensors.release(name);
  for (std::size_t e = 1; e < experts.size(); ++e) {
    sum.add_(experts[e].tensors.tensor(name).to(torch::kFloat32));
    experts[e].tensors.release(name);
  }
  return sum.div_(static_cast<double>(experts.size())).to(dtype);
}

// Layer l's router from its own generator (seed + 1000003 l), so that its value does not depend
// on write order.
torch::Tensor random_router(std::int64_t layer, std::int64_t experts, std::int64_t hidden, double std,
                            std::uint64_t seed, torch::ScalarType dtype) {
  auto generator = at::detail::createCPUGenerator(seed + 1000003ULL * static_cast<std::uint64_t>(layer));
  return at::normal(0.0, std, {experts, hidden}, generator).to(dtype);
}

// The MoE's provenance beside its weights (svmoe_merge.json).
Json merge_provenance(const std::vector<HfCheckpoint>& experts, double router_std, std::uint64_t seed) {
  Json provenance = {{"producer", "svmoe merge"},
                     {"method", "BTX: expert FFNs kept, other weights averaged, routers random"},
                     {"router_init", {{"distribution", "normal"}, {"std", router_std}, {"seed", seed}}},
                     {"experts", Json::array()}};
  for (const auto& e : experts) provenance["experts"].push_back(e.directory.string());
  return provenance;
}

}  // namespace

MergeResult run_merge(const MergeSettings& s, const RuntimeSettings& runtime) {
  std::vector<HfCheckpoint> experts;
  for (const auto& directory : s.experts) experts.push_back(load_hf_checkpoint(directory));  // mapped, not read
  check_experts_agree(experts);
  const auto n = static_cast<std::int64_t>(experts.size());
  const ModelConfig& dense = experts.front().config;
  const ModelConfig moe = merged_moe_config(dense, n, s);
  const double router_std = s.router_init_std > 0 ? s.router_init_std : dense.initializer_range;
  const MergePlan plan = plan_btx_merge(experts);

  // The inputs of the tensor produced last are released once it has been written (the writer
  // asks for the next tensor only then), so that resident memory stays near one tensor.
  std::string previous_source;
  const auto release_previous = [&] {
    if (previous_source.empty()) return;
    for (const auto& expert : experts) expert.tensors.release(previous_source);
    previous_source.clear();
  };
  const auto produce = [&](const TensorSpec& spec) -> torch::Tensor {
    release_previous();
    const MergedTensorSource& source = plan.sources.at(spec.name);
    previous_source = source.name;
    switch (source.kind) {
      case MergedTensorSource::Kind::kExpert:
        return experts[static_cast<std::size_t>(source.expert)].tensors.tensor(source.name);
      case MergedTensorSource::Kind::kMean:
        return mean_over_experts(experts, source.name, spec.dtype);
      case MergedTensorSource::Kind::kRouter:
        break;
    }
    return random_router(source.layer, n, dense.hidden_size, router_std, runtime.seed, spec.dtype);
  };

  spdlog::info("merge: {} experts -> {} (top-{}, {} layers, routers ~ normal(0, {}))", n, s.output.string(),
               s.num_experts_per_tok, dense.num_hidden_layers, router_std);
  const fs::path partial = begin_directory(s.output);
  try {
    write_file_atomically(partial / "config.json",
                          model_config_to_json(moe, experts.front().raw_config).dump(2) + "\n");
    write_sharded_safetensors(partial, plan.specs, produce, static_cast<std::uint64_t>(s.max_shard_mb) << 20);
    release_previous();
    for (const auto& name : tokenizer_file_names()) {
      const fs::path file = experts.front().directory / name;
      if (fs::exists(file)) fs::copy_file(file, partial / name);
    }
    write_file_atomically(partial / "svmoe_merge.json",
                          merge_provenance(experts, router_std, runtime.seed).dump(2) + "\n");
  } catch (...) {
    std::error_code ec;
    fs::remove_all(partial, ec);
    throw;
  }
  commit_directory(s.output);

  MergeResult result;
  result.config = moe;
  for (const auto& spec : plan.specs) {
    std::uint64_t count = 1;
    for (const auto d : spec.shape) count *= static_cast<std::uint64_t>(d);
    result.parameters += count;
  }
  spdlog::info("merge: wrote {} ({} parameters)", s.output.string(), format_count(result.parameters));
  return result;
}

}  // namespace svmoe
