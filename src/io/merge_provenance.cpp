#include "svmoe/io/merge_provenance.h"

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/json_fields.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

// Written by svmoe merge, read by svmoe inspect. The reader is lenient about absence (older svmoe
// versions wrote fewer fields; each missing one takes the value those versions implied) and
// strict about content (a present field of the wrong type or an unknown option is an error
// naming it), because a wrong provenance line is worse than an error.
namespace {

JsonFieldReader provenance_reader(const fs::path& file) {
  return JsonFieldReader(file, "it is svmoe merge's record of the MoE: merge again to write it");
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
  const JsonFieldReader read = provenance_reader(file);
  MergeProvenance p;
  p.method = read.option_or(json, "method", "", MergeMethod::kBtx);
  p.description = read.get_or<std::string>(json, "description", "", "", "a string");
  p.num_experts = read.get_or<std::int64_t>(json, "num_experts", "", 0, "an integer");
  const Json router = read.get_or<Json>(json, "router_init", "", Json::object(), "an object");
  p.router_init = read.option_or(router, "distribution", "router_init", RouterInit::kNormal);
  p.router_std = read.get_or<double>(router, "std", "router_init", 0.0, "a number");
  p.seed = read.get_or<std::uint64_t>(router, "seed", "router_init", 0, "a seed");
  // Parameters are top-level numbers keyed by their names; every known name is looked for.
  for (const MergeParameter parameter : all_merge_parameters()) {
    const std::string name(merge_parameter_name(parameter));
    if (json.contains(name)) p.parameters[parameter] = read.get<double>(json, name, "", "a number");
  }
  if (json.contains("experts")) {
    p.experts.emplace();
    for (const auto& expert : read.get<std::vector<std::string>>(json, "experts", "", "a list of paths")) {
      p.experts->emplace_back(expert);
    }
  }
  if (json.contains("base_model")) p.base_model = read.get<std::string>(json, "base_model", "", "a path");
  p.moe_kind = read.option_or(json, "moe_kind", "", MoeKind::kSparse);
  if (json.contains("shared_expert")) {
    const Json& shared = json.at("shared_expert");
    p.shared_expert = SharedExpertRecord{read.option_or(shared, "init", "shared_expert", SharedExpertInit::kBase),
                                         read.get_or<std::string>(shared, "gate", "shared_expert", "", "a string")};
  }
  return p;
}

std::optional<MergeProvenance> read_merge_provenance(const fs::path& checkpoint_dir) {
  const fs::path file = checkpoint_dir / kMergeProvenanceFile;
  if (!fs::exists(file)) return std::nullopt;
  return merge_provenance_from_json(provenance_reader(file).parse(), file);
}

}  // namespace svmoe
