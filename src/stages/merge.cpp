#include "svmoe/stages/merge.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/stages/upcycling.h"
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

// The inputs must be dense Llama models of one architecture with one tokenizer: name the first
// field that differs.
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
  moe.model_type = settings.moe_kind == MoeKind::kSoft ? ModelConfig::kSoftMoe : ModelConfig::kMixtral;
  moe.num_local_experts = experts;
  moe.num_experts_per_tok = settings.num_experts_per_tok;
  moe.router_aux_loss_coef = settings.router_aux_loss_coef;
  return moe;
}

namespace {

// Where one tensor of the MoE comes from (SPEC.md §4, stage 2; docs/upcycling.md).
struct MergedTensorSource {
  enum class Kind { kMean, kExpert, kRouter } kind;
  std::string name;       // the dense tensor (mean, expert)
  std::size_t model = 0;  // expert: which input model holds it
  ExpertFfnSlot slot;     // expert: its layer, expert and projection; router: its layer
};

// Every output tensor in write order, and its source.
struct MergePlan {
  std::vector<TensorSpec> specs;
  std::map<std::string, MergedTensorSource> sources;
};

// Expert e's FFN comes from input model e (trained experts) or from the one model copied; every
// other weight is the mean over the inputs; one router a layer.
MergePlan plan_merge(const std::vector<HfCheckpoint>& inputs, std::int64_t num_experts, std::uint64_t seed) {
  const CheckpointTensors& first = inputs.front().tensors;
  const auto stored_type = [&](const std::string& name) { return to_torch_dtype(first.entry(name).dtype); };
  MergePlan plan;
  for (const auto& name : first.names()) {
    const TensorEntry& entry = first.entry(name);
    if (const auto ffn = parameter_names::parse_dense_ffn(name)) {
      for (std::int64_t e = 0; e < num_experts; ++e) {
        const std::string out = parameter_names::expert_ffn(ffn->layer, e, ffn->projection);
        plan.specs.push_back({out, stored_type(name), entry.shape});
        const std::size_t model = inputs.size() == 1 ? 0 : static_cast<std::size_t>(e);
        plan.sources[out] = {MergedTensorSource::Kind::kExpert, name, model, {ffn->layer, e, ffn->projection, seed}};
      }
    } else if (!parameter_names::is_rotary_buffer(name)) {  // a rotary buffer is recomputed, not learned
      plan.specs.push_back({name, stored_type(name), entry.shape});
      plan.sources[name] = {MergedTensorSource::Kind::kMean, name, 0, {}};
    }
  }
  const ModelConfig& dense = inputs.front().config;
  for (std::int64_t l = 0; l < dense.num_hidden_layers; ++l) {
    const std::string out = parameter_names::router(l);
    plan.specs.push_back({out, stored_type(parameter_names::kEmbedTokens), {num_experts, dense.hidden_size}});
    plan.sources[out] = {MergedTensorSource::Kind::kRouter, "", 0, {l, 0, {}, seed}};
  }
  return plan;
}

// The element-wise mean of one tensor over the inputs, in float32, in `dtype`. A copy even for
// float32 inputs: the mapped tensor itself must stay as stored. Each input's pages are released
// as soon as they are summed.
torch::Tensor mean_over_inputs(const std::vector<HfCheckpoint>& inputs, const std::string& name,
                               torch::ScalarType dtype) {
  torch::Tensor sum = inputs.front().tensors.tensor(name).to(torch::kFloat32, false, /*copy=*/true);
  inputs.front().tensors.release(name);
  for (std::size_t e = 1; e < inputs.size(); ++e) {
    sum.add_(inputs[e].tensors.tensor(name).to(torch::kFloat32));
    inputs[e].tensors.release(name);
  }
  return sum.div_(static_cast<double>(inputs.size())).to(dtype);
}

// One expert's FFN weight as the method makes it from its source weight.
torch::Tensor expert_ffn_weight(const torch::Tensor& source, const ExpertFfnSlot& slot, const MergeSettings& s) {
  switch (s.method) {
    case MergeMethod::kBtx:
    case MergeMethod::kNaive:
      return source;
    case MergeMethod::kNoise:
      return noise_upcycled(source, slot, s.drop_ratio, s.noise_std);
    case MergeMethod::kDropUpcycling:
    case MergeMethod::kBtxDropUpcycling:
      break;
  }
  return drop_upcycled(source, slot, s.drop_ratio);
}

std::string method_description(MergeMethod method) {
  switch (method) {
    case MergeMethod::kBtx:
      return "BTX: trained experts' FFNs kept, other weights averaged, routers random";
    case MergeMethod::kNaive:
      return "naive upcycling: every expert a copy of one dense model's FFN, routers random";
    case MergeMethod::kNoise:
      return "random-noise upcycling: copies of one dense FFN, drop_ratio of each expert's neurons + normal(0, "
             "noise_std)";
    case MergeMethod::kDropUpcycling:
      return "Drop-Upcycling: copies of one dense FFN, drop_ratio of each expert's neurons re-drawn from the "
             "replaced weights' normal";
    case MergeMethod::kBtxDropUpcycling:
      break;
  }
  return "BTX + Drop-Upcycling: trained experts' FFNs with drop_ratio of each expert's neurons re-drawn, other "
         "weights averaged";
}

// The MoE's provenance beside its weights (kMergeProvenanceFile).
Json merge_provenance(const std::vector<HfCheckpoint>& inputs, const MergeSettings& s, double router_std,
                      std::uint64_t seed) {
  Json provenance = {
      {"producer", "svmoe merge"},
      {"method", enum_name(s.method)},
      {"description", method_description(s.method)},
      {"num_experts", s.num_experts},
      {"router_init", {{"distribution", enum_name(s.router_init)}, {"std", router_std}, {"seed", seed}}}};
  if (reads_drop_ratio(s.method)) provenance["drop_ratio"] = s.drop_ratio;
  if (s.method == MergeMethod::kNoise) provenance["noise_std"] = s.noise_std;
  if (merges_trained_experts(s.method)) {
    provenance["experts"] = Json::array();
    for (const auto& input : inputs) provenance["experts"].push_back(input.directory.string());
  } else {
    provenance["base_model"] = inputs.front().directory.string();
  }
  return provenance;
}

}  // namespace

MergeResult run_merge(const MergeSettings& s, const RuntimeSettings& runtime) {
  std::vector<HfCheckpoint> inputs;  // mapped, not read: the trained experts, or the one model copied
  if (merges_trained_experts(s.method)) {
    for (const auto& directory : s.experts) inputs.push_back(load_hf_checkpoint(directory));
  } else {
    inputs.push_back(load_hf_checkpoint(s.base_model));
  }
  check_experts_agree(inputs);
  const std::int64_t n = merges_trained_experts(s.method) ? static_cast<std::int64_t>(inputs.size()) : s.num_experts;
  const ModelConfig& dense = inputs.front().config;
  const ModelConfig moe = merged_moe_config(dense, n, s);
  const double router_std = s.router_init_std > 0 ? s.router_init_std : dense.initializer_range;
  const MergePlan plan = plan_merge(inputs, n, runtime.seed);

  // The inputs of the tensor produced last are released once it has been written (the writer
  // asks for the next tensor only then), so that resident memory stays near one tensor.
  std::string previous_source;
  const auto release_previous = [&] {
    if (previous_source.empty()) return;
    for (const auto& input : inputs) input.tensors.release(previous_source);
    previous_source.clear();
  };
  const auto produce = [&](const TensorSpec& spec) -> torch::Tensor {
    release_previous();
    const MergedTensorSource& source = plan.sources.at(spec.name);
    previous_source = source.name;
    switch (source.kind) {
      case MergedTensorSource::Kind::kExpert:
        return expert_ffn_weight(inputs[source.model].tensors.tensor(source.name), source.slot, s);
      case MergedTensorSource::Kind::kMean:
        return mean_over_inputs(inputs, source.name, spec.dtype);
      case MergedTensorSource::Kind::kRouter:
        break;
    }
    return initial_router(s.router_init, source.slot.layer, n, dense.hidden_size, router_std, runtime.seed, spec.dtype);
  };

  spdlog::info("merge ({}): {} experts -> {} (top-{}, {} layers, routers {}(std {}))", enum_name(s.method), n,
               s.output.string(), s.num_experts_per_tok, dense.num_hidden_layers, enum_name(s.router_init), router_std);
  const fs::path partial = begin_directory(s.output);
  try {
    write_file_atomically(partial / "config.json", model_config_to_json(moe, inputs.front().raw_config).dump(2) + "\n");
    write_sharded_safetensors(partial, plan.specs, produce, static_cast<std::uint64_t>(s.max_shard_mb) << 20);
    release_previous();
    for (const auto& name : tokenizer_file_names()) {
      const fs::path file = inputs.front().directory / name;
      if (fs::exists(file)) fs::copy_file(file, partial / name);
    }
    write_file_atomically(partial / kMergeProvenanceFile,
                          merge_provenance(inputs, s, router_std, runtime.seed).dump(2) + "\n");
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
