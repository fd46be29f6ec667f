// svmoe_merge.json, the record of how svmoe merge built an MoE (docs/upcycling.md), beside its
// config.json, and the one place its fields are named: svmoe merge writes it, svmoe inspect
// reads it back (io/checkpoint_summary.cpp).
//
//   {"producer": "svmoe merge", "method", "description", "num_experts",
//    "router_init": {"distribution", "std", "seed"},
//    one number per parameter the method reads, by its name ("drop_ratio", "noise_std"),
//    "experts": [DIR, ...]                  (a method that merges trained experts)
//    "base_model": DIR                      (when the merge read one)
//    "moe_kind"                             (when not sparse)
//    "shared_expert": {"init", "gate"}}     (a Qwen2-MoE's shared expert)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/enums.h"
#include "svmoe/config/merge_method.h"

namespace svmoe {

struct SharedExpertRecord {
  SharedExpertInit init = SharedExpertInit::kBase;
  std::string gate;  // "zero (sigmoid 1/2)" for Qwen2-MoE's gated shared expert, else "none"
};

struct MergeProvenance {
  MergeMethod method = MergeMethod::kBtx;
  std::string description;  // merge_method_spec(method).description when written
  std::int64_t num_experts = 0;
  RouterInit router_init = RouterInit::kNormal;
  double router_std = 0.0;
  std::uint64_t seed = 0;
  std::map<MergeParameter, double> parameters;                // those the method reads
  std::optional<std::vector<std::filesystem::path>> experts;  // the trained experts merged
  std::optional<std::filesystem::path> base_model;
  MoeKind moe_kind = MoeKind::kSparse;
  std::optional<SharedExpertRecord> shared_expert;
};

nlohmann::json to_json(const MergeProvenance& provenance);
// `file` names the file in the errors (FormatError). A field that older versions did not write
// takes the value they implied (method btx, sparse, normal routers).
MergeProvenance merge_provenance_from_json(const nlohmann::json& json, const std::filesystem::path& file);

// The record of the MoE in `checkpoint_dir`; none when it has none (not made by svmoe merge).
// FormatError when it is there but not valid.
std::optional<MergeProvenance> read_merge_provenance(const std::filesystem::path& checkpoint_dir);

}  // namespace svmoe
