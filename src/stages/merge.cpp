#include "svmoe/stages/merge.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/config/merge_method.h"
#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/merge_provenance.h"
#include "svmoe/io/parameter_names.h"
#include "svmoe/stages/upcycling.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/directory_lock.h"
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
          "expert '" + expert.directory.string() + "' is already an MoE (" + expert.config.model_type() + ")",
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

// merge.shared_expert base beside trained experts: the model they were trained from, so a
// dense model of their FFN shape.
void check_shared_expert_source(const HfCheckpoint& base, const HfCheckpoint& expert) {
  const ModelConfig& b = base.config;
  const ModelConfig& e = expert.config;
  if (b.is_moe() || b.hidden_size != e.hidden_size || b.intermediate_size != e.intermediate_size ||
      b.num_hidden_layers != e.num_hidden_layers) {
    throw ConfigError("config key 'merge.base_model' is '" + base.directory.string() + "', a " + b.model_type() +
                          " with hidden_size " + std::to_string(b.hidden_size) + ", intermediate_size " +
                          std::to_string(b.intermediate_size) + " and " + std::to_string(b.num_hidden_layers) +
                          " layers; the experts ('" + expert.directory.string() + "') are a " + e.model_type() +
                          " with " + std::to_string(e.hidden_size) + ", " + std::to_string(e.intermediate_size) +
                          " and " + std::to_string(e.num_hidden_layers),
                      "give the dense model the experts were trained from, or set merge.shared_expert: mean");
  }
}

}  // namespace

ModelConfig merged_moe_config(const ModelConfig& dense, std::int64_t experts, const MergeSettings& settings) {
  ModelConfig moe = dense;
  moe.architecture = merged_architecture(settings.moe_kind, settings.shared_expert != SharedExpertInit::kNone);
  moe.num_local_experts = experts;
  moe.num_experts_per_tok = settings.num_experts_per_tok;
  // Not yet trained with any LB term: transformers' default, which stage 4 replaces with the
  // alpha it balances with (finetune.load_balancing.alpha), so the merge reads no LB setting.
  moe.router_aux_loss_coef = ModelConfig::kTransformersRouterAuxLossCoef;
  switch (moe.architecture) {
    case Architecture::kLlama:
    case Architecture::kMixtral:
    case Architecture::kSoftMoe:
      break;
    case Architecture::kCartesianMoe:
      // Each sub-expert and shared expert is half of a dense FFN: A the first d_ff/2 neurons, B the rest.
      if (dense.intermediate_size % 2 != 0) {
        throw ConfigError(
            "config key 'merge.moe_kind' is cartesian, which splits each expert's FFN into halves, but "
            "the dense intermediate_size is odd (" +
                std::to_string(dense.intermediate_size) + ")",
            "set merge.moe_kind: sparse for this model");
      }
      moe.intermediate_size = dense.intermediate_size / 2;
      if (settings.shared_expert != SharedExpertInit::kNone)
        moe.shared_expert_intermediate_size = moe.intermediate_size;
      break;
    case Architecture::kQwen2Moe:
      // Qwen2MoeForCausalLM as it is: Mixtral's renormalised top-k, and q/k/v biases (zero here)
      // because transformers' older versions and vLLM always build them.
      moe.shared_expert_intermediate_size = dense.intermediate_size;
      moe.norm_topk_prob = true;
      moe.qkv_bias = true;
      break;
  }
  return moe;
}

namespace {

// Where one tensor of the MoE comes from (SPEC.md §4, stage 2; docs/upcycling.md, docs/moe.md).
struct MergedTensorSource {
  // kMean: over the inputs; kExpert: one input's FFN, as the method makes it; kRouter: drawn;
  // kShared: the shared expert's source FFN (merge.shared_expert); kZero: the shared expert's
  // gate and Qwen2-MoE's attention biases.
  enum class Kind { kMean, kExpert, kRouter, kShared, kZero } kind;
  std::string name;       // the dense tensor (mean, expert, shared)
  std::size_t model = 0;  // expert: which input model holds it
  ExpertFfnSlot slot;     // expert, shared: its layer, expert and projection; router: its index
  // CartesianMoE: the half of the FFN's neurons a sub-layer takes (0: A, 1: B); -1: all of them.
  std::int64_t half = -1;
};

// Half `half` of an FFN weight's intermediate neurons: rows of gate/up, columns of down.
torch::Tensor ffn_half(const torch::Tensor& weight, parameter_names::FfnProjection projection, std::int64_t half) {
  const std::int64_t dim = projection == parameter_names::FfnProjection::kDown ? 1 : 0;
  const std::int64_t size = weight.size(dim) / 2;
  return weight.narrow(dim, half * size, size).contiguous();
}

// Every output tensor in write order, and its source.
struct MergePlan {
  std::vector<TensorSpec> specs;
  std::map<std::string, MergedTensorSource> sources;
};

// Expert e's FFN comes from input model e (trained experts) or from the one model copied; every
// other weight is the mean over the inputs; one router a layer. A Qwen2-MoE adds the shared
// expert (from each layer's dense FFN), its gate and the q/k/v biases. A CartesianMoE gives
// sub-layer A the first half of each FFN's neurons and B the second, two routers a layer, and
// the norm between starts as the mean post-attention norm.
MergePlan plan_merge(const std::vector<HfCheckpoint>& inputs, const ModelConfig& moe, std::uint64_t seed) {
  namespace names = parameter_names;
  using Kind = MergedTensorSource::Kind;
  const CheckpointTensors& first = inputs.front().tensors;
  const auto stored_type = [&](const std::string& name) { return to_torch_dtype(first.entry(name).dtype); };
  const auto weight_dtype = stored_type(names::kEmbedTokens);
  MergePlan plan;
  const auto add = [&](const std::string& name, torch::ScalarType dtype, std::vector<std::int64_t> shape,
                       MergedTensorSource source) {
    plan.specs.push_back({name, dtype, std::move(shape)});
    plan.sources[name] = std::move(source);
  };
  // A dense FFN projection becomes the experts' (and a shared expert's) copies of it.
  const auto add_ffn_copies = [&](const std::string& name, const TensorEntry& entry, const names::FfnName& ffn) {
    const auto expert_source = [&](std::int64_t e, std::int64_t half) {
      const std::size_t model = inputs.size() == 1 ? 0 : static_cast<std::size_t>(e);
      return MergedTensorSource{Kind::kExpert, name, model, {ffn.layer, e, ffn.projection, seed}, half};
    };
    switch (moe.architecture) {
      case Architecture::kLlama:
        break;  // merged_moe_config never makes a dense model
      case Architecture::kMixtral:
      case Architecture::kSoftMoe:
      case Architecture::kQwen2Moe:
        for (std::int64_t e = 0; e < moe.num_local_experts; ++e) {
          add(names::expert_ffn(moe, ffn.layer, e, ffn.projection), stored_type(name), entry.shape,
              expert_source(e, /*half=*/-1));
        }
        if (moe.has_shared_expert()) {
          add(names::shared_expert_ffn(ffn.layer, ffn.projection), stored_type(name), entry.shape,
              {Kind::kShared, name, 0, {}});
        }
        break;
      case Architecture::kCartesianMoe: {
        // Sub-layer A takes the first half of the FFN's neurons, B the second.
        auto half_shape = entry.shape;
        half_shape[ffn.projection == names::FfnProjection::kDown ? 1 : 0] /= 2;
        for (std::int64_t sub = 0; sub < 2; ++sub) {
          for (std::int64_t e = 0; e < moe.num_local_experts; ++e) {
            add(names::cartesian_expert_ffn(ffn.layer, sub, e, ffn.projection), stored_type(name), half_shape,
                expert_source(e, sub));
          }
          if (moe.has_shared_expert()) {
            add(names::cartesian_shared_expert_ffn(ffn.layer, sub, ffn.projection), stored_type(name), half_shape,
                {Kind::kShared, name, 0, {ffn.layer, 0, ffn.projection, seed}, sub});
          }
        }
        break;
      }
    }
  };
  for (const auto& name : first.names()) {
    const TensorEntry& entry = first.entry(name);
    if (const auto ffn = names::parse_dense_ffn(name)) {
      add_ffn_copies(name, entry, *ffn);
    } else if (!names::is_rotary_buffer(name)) {  // a rotary buffer is recomputed, not learned
      add(name, stored_type(name), entry.shape, {Kind::kMean, name, 0, {}});
    }
  }
  // What a layer of the MoE has that no dense tensor becomes: its routers, and the rest.
  const std::int64_t q_size = moe.num_attention_heads * moe.head_dim;
  const std::int64_t kv_size = moe.num_key_value_heads * moe.head_dim;
  const std::vector<std::int64_t> router_shape = {moe.num_local_experts, moe.hidden_size};
  for (std::int64_t l = 0; l < moe.num_hidden_layers; ++l) {
    switch (moe.architecture) {
      case Architecture::kLlama:
        break;
      case Architecture::kMixtral:
      case Architecture::kSoftMoe:
        add(names::router(moe, l), weight_dtype, router_shape, {Kind::kRouter, "", 0, {l, 0, {}, seed}});
        break;
      case Architecture::kQwen2Moe: {
        add(names::router(moe, l), weight_dtype, router_shape, {Kind::kRouter, "", 0, {l, 0, {}, seed}});
        add(names::shared_expert_gate(l), weight_dtype, {1, moe.hidden_size}, {Kind::kZero, "", 0, {}});
        const auto biases = names::qkv_biases(l);
        for (std::size_t i = 0; i < biases.size(); ++i) {
          add(biases[i], weight_dtype, {i == 0 ? q_size : kv_size}, {Kind::kZero, "", 0, {}});
        }
        break;
      }
      case Architecture::kCartesianMoe: {
        for (std::int64_t sub = 0; sub < 2; ++sub) {
          add(names::cartesian_router(l, sub), weight_dtype, router_shape,
              {Kind::kRouter, "", 0, {2 * l + sub, 0, {}, seed}});
        }
        const std::string norm = names::post_attention_norm(l);
        add(names::cartesian_norm(l), stored_type(norm), first.entry(norm).shape, {Kind::kMean, norm, 0, {}});
        break;
      }
    }
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

// The MoE's provenance beside its weights (io/merge_provenance.h).
MergeProvenance merge_provenance(const std::vector<HfCheckpoint>& inputs, const MergeSettings& s, double router_std,
                                 std::uint64_t seed) {
  const MergeMethodSpec& spec = merge_method_spec(s.method);
  MergeProvenance provenance;
  provenance.method = s.method;
  provenance.description = std::string(spec.description);
  provenance.num_experts = s.num_experts;
  provenance.router_init = s.router_init;
  provenance.router_std = router_std;
  provenance.seed = seed;
  for (const MergeParameter parameter : spec.parameters) {
    provenance.parameters[parameter] = merge_parameter_value(s, parameter);
  }
  if (spec.merges_trained_experts()) {
    provenance.experts.emplace();
    for (const auto& input : inputs) provenance.experts->push_back(input.directory);
  }
  if (!s.base_model.empty()) provenance.base_model = s.base_model;
  provenance.moe_kind = s.moe_kind;
  if (s.shared_expert != SharedExpertInit::kNone) {
    const bool gated = architecture_row(merged_architecture(s.moe_kind, true)).gated_shared_expert;
    provenance.shared_expert = SharedExpertRecord{s.shared_expert, gated ? "zero (sigmoid 1/2)" : "none"};
  }
  return provenance;
}

}  // namespace

MergeResult run_merge(const MergeSettings& s, const RuntimeSettings& runtime) {
  const DirectoryLock lock = DirectoryLock::acquire(s.output, "merge");
  std::vector<HfCheckpoint> inputs;  // mapped, not read: the trained experts, or the one model copied
  const bool trained_experts = merge_method_spec(s.method).merges_trained_experts();
  if (trained_experts) {
    for (const auto& directory : s.experts) inputs.push_back(load_hf_checkpoint(directory));
  } else {
    inputs.push_back(load_hf_checkpoint(s.base_model));
  }
  check_experts_agree(inputs);
  const std::int64_t n = trained_experts ? static_cast<std::int64_t>(inputs.size()) : s.num_experts;
  const ModelConfig& dense = inputs.front().config;
  const ModelConfig moe = merged_moe_config(dense, n, s);
  const double router_std = s.router_init_std > 0 ? s.router_init_std : dense.initializer_range;
  const MergePlan plan = plan_merge(inputs, moe, runtime.seed);
  // The shared expert's source: the base model's FFN (the model copied, or merge.base_model beside
  // trained experts), or the mean over the inputs.
  std::vector<HfCheckpoint> shared_source;
  if (s.shared_expert == SharedExpertInit::kBase && trained_experts) {
    shared_source.push_back(load_hf_checkpoint(s.base_model));
    check_shared_expert_source(shared_source.front(), inputs.front());
  }
  const std::vector<HfCheckpoint>& shared_inputs = shared_source.empty() ? inputs : shared_source;

  // The inputs of the tensor produced last are released once it has been written (the writer
  // asks for the next tensor only then), so that resident memory stays near one tensor.
  std::string previous_source;
  const auto release_previous = [&] {
    if (previous_source.empty()) return;
    for (const auto& input : inputs) input.tensors.release(previous_source);
    for (const auto& input : shared_source) input.tensors.release(previous_source);
    previous_source.clear();
  };
  const auto produce = [&](const TensorSpec& spec) -> torch::Tensor {
    release_previous();
    const MergedTensorSource& source = plan.sources.at(spec.name);
    previous_source = source.name;
    const auto halved = [&](const torch::Tensor& ffn) {
      return source.half < 0 ? ffn : ffn_half(ffn, source.slot.projection, source.half);
    };
    switch (source.kind) {
      case MergedTensorSource::Kind::kExpert:
        return halved(expert_ffn_weight(inputs[source.model].tensors.tensor(source.name), source.slot, s));
      case MergedTensorSource::Kind::kMean:
        return mean_over_inputs(inputs, source.name, spec.dtype);
      case MergedTensorSource::Kind::kShared:
        return halved(mean_over_inputs(shared_inputs, source.name, spec.dtype));  // of one model: a copy
      case MergedTensorSource::Kind::kZero:
        return torch::zeros(spec.shape, spec.dtype);
      case MergedTensorSource::Kind::kRouter:
        break;
    }
    return initial_router(s.router_init, source.slot.layer, n, dense.hidden_size, router_std, runtime.seed, spec.dtype);
  };

  spdlog::info("merge ({}): {} experts -> {} ({}, top-{}, {} layers, routers {}(std {}))", enum_name(s.method), n,
               s.output.string(), moe.model_type(), s.num_experts_per_tok, dense.num_hidden_layers,
               enum_name(s.router_init), router_std);
  switch (moe.architecture) {
    case Architecture::kLlama:
    case Architecture::kMixtral:
    case Architecture::kSoftMoe:
      break;
    case Architecture::kCartesianMoe:
      spdlog::info("merge: CartesianMoE: sub-layer A takes each expert's first {} FFN neurons, B the other {}{}",
                   moe.intermediate_size, moe.intermediate_size,
                   moe.has_shared_expert() ? ", each with a shared expert" : "");
      break;
    case Architecture::kQwen2Moe:
      spdlog::info("merge: each layer adds a shared expert from {}, its gate at zero",
                   s.shared_expert == SharedExpertInit::kBase ? "the base model's FFN" : "the mean of the merged FFNs");
      break;
  }
  HfCheckpointWriter writer(s.output);
  writer.write_config(moe, inputs.front().raw_config);
  writer.write_tensors(plan.specs, produce, static_cast<std::uint64_t>(s.max_shard_mb) << 20);
  release_previous();
  writer.copy_tokenizer(inputs.front().directory);
  writer.write_json(kMergeProvenanceFile, to_json(merge_provenance(inputs, s, router_std, runtime.seed)));
  writer.commit();

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
