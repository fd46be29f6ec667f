#include "svmoe/io/hf_config.h"

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;

// Typed reads of config.json's fields, each error naming the file and the field. A null field
// counts as absent: transformers writes null for unset optional ids and windows.
class ConfigJsonReader {
 public:
  ConfigJsonReader(const Json& json, std::string source) : json_(json), source_(std::move(source)) {}

  bool has(const std::string& key) const { return json_.contains(key) && !json_.at(key).is_null(); }

  std::int64_t integer(const std::string& key, std::int64_t min = 1) const {
    if (!has(key)) fail(key, "is missing", "a Llama/Mixtral config.json always has it");
    const Json& v = json_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < min) {
      fail(key, "is " + v.dump() + ", expected an integer >= " + std::to_string(min));
    }
    return v.get<std::int64_t>();
  }
  std::int64_t integer_or(const std::string& key, std::int64_t fallback, std::int64_t min = 1) const {
    return has(key) ? integer(key, min) : fallback;
  }
  double number_or(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const Json& v = json_.at(key);
    if (!v.is_number()) fail(key, "is " + v.dump() + ", expected a number");
    return v.get<double>();
  }
  bool boolean_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const Json& v = json_.at(key);
    if (!v.is_boolean()) fail(key, "is " + v.dump() + ", expected true or false");
    return v.get<bool>();
  }
  std::string string_or(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const Json& v = json_.at(key);
    if (!v.is_string()) fail(key, "is " + v.dump() + ", expected a string");
    return v.get<std::string>();
  }
  std::optional<std::int64_t> optional_id(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return integer(key, 0);
  }

  [[noreturn]] void fail(const std::string& key, const std::string& problem, const std::string& hint = {}) const {
    throw FormatError("'" + source_ + "': \"" + key + "\" " + problem, hint);
  }
  [[noreturn]] void unsupported(const std::string& key, const std::string& problem, const std::string& hint) const {
    throw UnsupportedError("'" + source_ + "': \"" + key + "\" " + problem, hint);
  }

 private:
  const Json& json_;
  std::string source_;
};

void check_rope(const ConfigJsonReader& read, const Json& json, ModelConfig& config) {
  // Older configs: top-level rope_theta and rope_scaling. Newer: rope_parameters {rope_type, rope_theta}.
  config.rope_theta = read.number_or("rope_theta", 10000.0);
  auto check_type = [&](const std::string& key, const Json& section) {
    const std::string type = section.value("rope_type", section.value("type", std::string("default")));
    if (type != "default") {
      read.unsupported(key, "asks for rope type '" + type + "'",
                       "svmoe implements only the default rotary embedding (no rope scaling)");
    }
  };
  if (read.has("rope_scaling")) {
    if (!json.at("rope_scaling").is_object()) read.fail("rope_scaling", "is not an object");
    check_type("rope_scaling", json.at("rope_scaling"));
  }
  if (read.has("rope_parameters")) {
    const Json& section = json.at("rope_parameters");
    if (!section.is_object()) read.fail("rope_parameters", "is not an object");
    check_type("rope_parameters", section);
    if (section.contains("rope_theta")) {
      if (!section.at("rope_theta").is_number()) read.fail("rope_parameters.rope_theta", "is not a number");
      config.rope_theta = section.at("rope_theta").get<double>();
    }
  }
  if (!(config.rope_theta > 0)) read.fail("rope_theta", "must be positive");
}

// Qwen2-MoE's own fields. svmoe's model has an MoE block (routed experts plus the gated shared
// expert) in every layer, as Qwen2MoeDecoderLayer builds with decoder_sparse_step 1 and no
// mlp_only_layers.
void read_qwen2_moe_fields(const ConfigJsonReader& read, const Json& json, ModelConfig& c) {
  c.shared_expert_intermediate_size = read.integer("shared_expert_intermediate_size");
  c.norm_topk_prob = read.boolean_or("norm_topk_prob", false);  // transformers' default for qwen2_moe
  c.qkv_bias = read.boolean_or("qkv_bias", true);               // older configs lack it: always biased
  if (read.integer_or("decoder_sparse_step", 1) != 1) {
    read.unsupported("decoder_sparse_step", "is not 1", "svmoe builds an MoE block in every layer");
  }
  if (read.has("mlp_only_layers") && !(json.at("mlp_only_layers").is_array() && json.at("mlp_only_layers").empty())) {
    read.unsupported("mlp_only_layers", "is " + json.at("mlp_only_layers").dump(),
                     "svmoe builds an MoE block in every layer; set it to []");
  }
}

// The fields only some architectures have.
void read_architecture_fields(const ConfigJsonReader& read, const Json& json, ModelConfig& c) {
  switch (c.architecture) {
    case Architecture::kLlama:
    case Architecture::kMixtral:
    case Architecture::kSoftMoe:
      return;
    case Architecture::kQwen2Moe:
      read_qwen2_moe_fields(read, json, c);
      return;
    case Architecture::kCartesianMoe:
      c.shared_expert_intermediate_size = read.integer_or("shared_expert_intermediate_size", 0, 0);
      return;
  }
}

}  // namespace

// model_type picks the architecture row, which names the keys that differ between
// architectures (the expert FFN's size, the expert count); then the fields every supported
// architecture shares, with transformers' defaults where a field may be absent; then the
// architecture's own fields. Anything svmoe's model would compute differently from transformers
// (another activation, a sliding window, router jitter) is refused rather than ignored.
ModelConfig parse_model_config(const Json& json, const std::string& source) {
  if (!json.is_object()) throw FormatError("'" + source + "' is not a JSON object");
  const ConfigJsonReader read(json, source);
  ModelConfig c;
  const std::string model_type = read.string_or("model_type", "");
  const std::optional<Architecture> architecture = architecture_of_model_type(model_type);
  if (!architecture) {
    read.unsupported("model_type", model_type.empty() ? "is missing" : "is '" + model_type + "'",
                     "svmoe reads Llama (dense), Mixtral and Qwen2-MoE (MoE) checkpoints, and its own CartesianMoE "
                     "and causal Soft MoE; the model_types it knows: " +
                         known_model_types());
  }
  c.architecture = *architecture;
  const ArchitectureRow& row = architecture_row(c.architecture);
  c.vocab_size = read.integer("vocab_size");
  c.hidden_size = read.integer("hidden_size");
  // Qwen2-MoE's intermediate_size is the dense FFN of mlp_only_layers, which svmoe refuses below.
  c.intermediate_size = read.integer(row.expert_ffn_key);
  c.num_hidden_layers = read.integer("num_hidden_layers");
  c.num_attention_heads = read.integer("num_attention_heads");
  c.num_key_value_heads = read.integer_or("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    read.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                         ") does not divide num_attention_heads (" +
                                         std::to_string(c.num_attention_heads) + ")");
  }
  if (!read.has("head_dim") && c.hidden_size % c.num_attention_heads != 0) {
    read.fail("hidden_size", "is not divisible by num_attention_heads and no head_dim is given");
  }
  c.head_dim = read.integer_or("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.head_dim % 2 != 0) read.fail("head_dim", "must be even for the rotary embedding");
  c.max_position_embeddings = read.integer_or("max_position_embeddings", 2048);
  c.rms_norm_eps = read.number_or("rms_norm_eps", 1e-6);
  c.initializer_range = read.number_or("initializer_range", 0.02);
  c.tie_word_embeddings = read.boolean_or("tie_word_embeddings", false);
  c.attention_bias = read.boolean_or("attention_bias", false);
  c.mlp_bias = read.boolean_or("mlp_bias", false);
  c.bos_token_id = read.optional_id("bos_token_id");
  c.pad_token_id = read.optional_id("pad_token_id");
  // eos_token_id is one id or a list of them (Llama 3 style); generation stops at any.
  if (read.has("eos_token_id")) {
    const Json& eos = json.at("eos_token_id");
    if (eos.is_array()) {
      for (const auto& id : eos) {
        if (!id.is_number_integer()) read.fail("eos_token_id", "holds a non-integer: " + eos.dump());
        c.eos_token_ids.push_back(id.get<std::int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(read.integer("eos_token_id", 0));
    }
  }
  // Newer transformers writes dtype, older torch_dtype; either is read, dtype first.
  c.dtype = read.string_or("dtype", read.string_or("torch_dtype", "float32"));
  if (c.dtype != "float32" && c.dtype != "bfloat16" && c.dtype != "float16") {
    read.unsupported("dtype", "is '" + c.dtype + "'", "svmoe stores models as float32, bfloat16 or float16");
  }
  check_rope(read, json, c);

  const std::string activation = read.string_or("hidden_act", "silu");
  if (activation != "silu") {
    read.unsupported("hidden_act", "is '" + activation + "'",
                     "svmoe implements the SwiGLU FFN (silu) of Llama/Mixtral");
  }
  // pretraining_tp > 1 changes only how transformers slices the matmuls, not the maths: ignored.
  if (read.has("sliding_window") && read.boolean_or("use_sliding_window", true)) {
    read.unsupported("sliding_window", "is set", "svmoe implements full causal attention; set it to null");
  }
  read_architecture_fields(read, json, c);
  if (c.is_moe()) {
    const char* experts_key = row.experts_key;
    c.num_local_experts = read.integer(experts_key);
    c.num_experts_per_tok = read.integer("num_experts_per_tok");
    if (c.num_experts_per_tok > c.num_local_experts) {
      read.fail("num_experts_per_tok", std::string("is larger than ") + experts_key);
    }
    c.router_aux_loss_coef = read.number_or("router_aux_loss_coef", ModelConfig::kTransformersRouterAuxLossCoef);
    if (read.number_or("router_jitter_noise", 0.0) != 0.0) {
      read.unsupported("router_jitter_noise", "is not 0", "svmoe routes without jitter noise; set it to 0");
    }
  }
  return c;
}

std::filesystem::path model_config_file(const std::filesystem::path& model_directory) {
  return model_directory / "config.json";
}

Json read_model_config_json(const std::filesystem::path& model_directory) {
  const std::filesystem::path config_json = model_config_file(model_directory);
  if (!std::filesystem::exists(config_json)) {
    throw IoError("'" + config_json.string() + "' does not exist",
                  "a Hugging Face checkpoint directory holds config.json next to model.safetensors");
  }
  try {
    return Json::parse(read_text_file(config_json));
  } catch (const Json::parse_error& e) {
    throw FormatError("'" + config_json.string() + "' is not valid JSON: " + e.what(), "fix or replace the file");
  }
}

ModelConfig read_model_config(const std::filesystem::path& model_directory) {
  return parse_model_config(read_model_config_json(model_directory), model_config_file(model_directory).string());
}

// `base` is the input checkpoint's config.json: fields svmoe does not model (say, a
// quantization or generation note) are kept, the modelled ones overwritten, and the spellings
// that would contradict them (torch_dtype, the old rope keys) erased.
Json model_config_to_json(const ModelConfig& c, const Json& base) {
  Json json = base.is_object() ? base : Json::object();
  json.erase("torch_dtype");
  json.erase("rope_theta");
  json.erase("rope_scaling");
  const ArchitectureRow& row = architecture_row(c.architecture);
  json["architectures"] = {row.class_name};
  json["model_type"] = row.model_type;
  json["vocab_size"] = c.vocab_size;
  json["hidden_size"] = c.hidden_size;
  json["intermediate_size"] = c.intermediate_size;
  json["num_hidden_layers"] = c.num_hidden_layers;
  json["num_attention_heads"] = c.num_attention_heads;
  json["num_key_value_heads"] = c.num_key_value_heads;
  json["head_dim"] = c.head_dim;
  json["max_position_embeddings"] = c.max_position_embeddings;
  json["rms_norm_eps"] = c.rms_norm_eps;
  // Both spellings, so that older and newer transformers (and vLLM) read the same theta.
  json["rope_theta"] = c.rope_theta;
  json["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
  json["initializer_range"] = c.initializer_range;
  json["tie_word_embeddings"] = c.tie_word_embeddings;
  json["hidden_act"] = "silu";
  json["bos_token_id"] = c.bos_token_id ? Json(*c.bos_token_id) : Json(nullptr);
  json["pad_token_id"] = c.pad_token_id ? Json(*c.pad_token_id) : Json(nullptr);
  if (c.eos_token_ids.size() == 1) {
    json["eos_token_id"] = c.eos_token_ids.front();
  } else if (!c.eos_token_ids.empty()) {
    json["eos_token_id"] = c.eos_token_ids;
  } else {
    json["eos_token_id"] = nullptr;
  }
  json["dtype"] = c.dtype;
  // Each architecture's own keys, as its transformers class reads them; the keys of the other
  // architectures that `base` may hold (a dense Llama's biases in an MoE) are erased.
  switch (c.architecture) {
    case Architecture::kLlama:
      json["attention_bias"] = c.attention_bias;
      json["mlp_bias"] = c.mlp_bias;
      break;
    case Architecture::kQwen2Moe:
      json.erase("attention_bias");
      json.erase("mlp_bias");
      json.erase("num_local_experts");
      json["num_experts"] = c.num_local_experts;
      json["num_experts_per_tok"] = c.num_experts_per_tok;
      json["moe_intermediate_size"] = c.intermediate_size;
      json["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
      json["intermediate_size"] = c.shared_expert_intermediate_size;  // read by mlp_only_layers only (none)
      json["norm_topk_prob"] = c.norm_topk_prob;
      json["qkv_bias"] = c.qkv_bias;
      json["decoder_sparse_step"] = 1;
      json["mlp_only_layers"] = Json::array();
      json["router_aux_loss_coef"] = c.router_aux_loss_coef;
      json["use_sliding_window"] = false;
      json["sliding_window"] = nullptr;
      break;
    case Architecture::kCartesianMoe:
      json["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;  // ungated, 0: none
      [[fallthrough]];
    case Architecture::kMixtral:
    case Architecture::kSoftMoe:
      json.erase("attention_bias");
      json.erase("mlp_bias");
      json["num_local_experts"] = c.num_local_experts;
      json["num_experts_per_tok"] = c.num_experts_per_tok;
      json["router_aux_loss_coef"] = c.router_aux_loss_coef;
      json["sliding_window"] = nullptr;
      break;
  }
  return json;
}

}  // namespace svmoe
