#include "svmoe/io/merge_provenance.h"

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

// Written by svmoe merge, read by svmoe inspect. The reader is lenient about absence (older svmoe
// versions wrote fewer fields; each missing one takes the value those versions implied) and
// strict about content (a present field of the wrong type or an unknown option is an error
// naming it), because a wrong provenance line is worse than an error.
namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& field, const std::string& found,
                       const std::string& expected) {
  throw FormatError("'" + file.string() + "' has " + field + " " + found + "; expected " + expected,
                    "it is svmoe merge's record of the MoE: merge again to write it");
}

// The field's value as T, or `fallback` when absent (a record of an older version).
template <typename T>
T value_or(const Json& object, const std::string& key, T fallback, const fs::path& file, const char* expected) {
  if (!object.is_object()) fail(file, "its top level", object.dump(), "a JSON object");
  if (!object.contains(key)) return fallback;
  try {
    return object.at(key).get<T>();
  } catch (const Json::exception&) {
    fail(file, key, object.at(key).dump(), expected);
  }
}

// An enum written by its spelling (config/enums.h), so the record reads as the config did.
template <typename E>
E option_or(const Json& object, const std::string& key, E fallback, const fs::path& file) {
  const auto name = value_or<std::string>(object, key, enum_name(fallback), file, "a string");
  const auto value = enum_from_name<E>(name);
  if (!value) fail(file, key, "'" + name + "'", "one of " + join(enum_names<E>(), ", "));
  return *value;
}

}  // namespace

Json to_json(const MergeProvenance& p) {
  Json out = {{"producer", "svmoe merge"},
              {"method", enum_name(p.method)},
              {"description", p.description},
              {"num_experts", p.num_experts},
              {"router_init", {{"distribution", enum_name(p.router_init)}, {"std", p.router_std}, {"seed", p.seed}}}};
  // Only the parameters the method reads (its descriptor's list, config/merge_method.h): a btx
  // record has no drop_ratio, so nobody reads one into it.
  for (const auto& [parameter, value] : p.parameters) out[std::string(merge_parameter_name(parameter))] = value;
  if (p.experts) {
    out["experts"] = Json::array();
    for (const auto& expert : *p.experts) out["experts"].push_back(expert.string());
  }
  if (p.base_model) out["base_model"] = p.base_model->string();
  if (p.moe_kind != MoeKind::kSparse) out["moe_kind"] = enum_name(p.moe_kind);
  if (p.shared_expert) {
    out["shared_expert"] = {{"init", enum_name(p.shared_expert->init)}, {"gate", p.shared_expert->gate}};
  }
  return out;
}

MergeProvenance merge_provenance_from_json(const Json& json, const fs::path& file) {
  MergeProvenance p;
  p.method = option_or(json, "method", MergeMethod::kBtx, file);
  p.description = value_or<std::string>(json, "description", "", file, "a string");
  p.num_experts = value_or<std::int64_t>(json, "num_experts", 0, file, "an integer");
  const Json router = value_or<Json>(json, "router_init", Json::object(), file, "an object");
  p.router_init = option_or(router, "distribution", RouterInit::kNormal, file);
  p.router_std = value_or<double>(router, "std", 0.0, file, "a number");
  p.seed = value_or<std::uint64_t>(router, "seed", 0, file, "a seed");
  // Parameters are top-level numbers keyed by their names; every known name is looked for.
  for (const MergeParameter parameter : all_merge_parameters()) {
    const std::string name(merge_parameter_name(parameter));
    if (json.contains(name)) p.parameters[parameter] = value_or<double>(json, name, 0.0, file, "a number");
  }
  if (json.contains("experts")) {
    p.experts.emplace();
    for (const auto& expert : value_or<std::vector<std::string>>(json, "experts", {}, file, "a list of paths")) {
      p.experts->emplace_back(expert);
    }
  }
  if (json.contains("base_model")) p.base_model = value_or<std::string>(json, "base_model", "", file, "a path");
  p.moe_kind = option_or(json, "moe_kind", MoeKind::kSparse, file);
  if (json.contains("shared_expert")) {
    const Json shared = value_or<Json>(json, "shared_expert", Json::object(), file, "an object");
    p.shared_expert = SharedExpertRecord{option_or(shared, "init", SharedExpertInit::kBase, file),
                                         value_or<std::string>(shared, "gate", "", file, "a string")};
  }
  return p;
}

std::optional<MergeProvenance> read_merge_provenance(const fs::path& checkpoint_dir) {
  const fs::path file = checkpoint_dir / kMergeProvenanceFile;
  if (!fs::exists(file)) return std::nullopt;
  Json json;
  try {
    json = Json::parse(read_text_file(file));
  } catch (const Json::parse_error& e) {
    throw FormatError("'" + file.string() + "' is not valid JSON: " + e.what(),
                      "it is svmoe merge's record of the MoE: merge again to write it");
  }
  return merge_provenance_from_json(json, file);
}

}  // namespace svmoe
