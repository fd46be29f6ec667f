// One descriptor per merge method (SPEC.md §4, stage 2; docs/upcycling.md): what stage 2 reads
// to build the MoE and how the tables and the provenance record name it. The one other place a
// method is handled is its transform of an expert's FFN weight (stages/merge.cpp,
// expert_ffn_weight). Both switch on MergeMethod without a default, so adding a method to the
// enum makes the compiler point at the two places to fill (docs/architecture.md, "Add a merge
// method").
#pragma once

#include <string_view>
#include <vector>

#include "svmoe/config/enums.h"

namespace svmoe {

// Where a method's experts come from.
enum class MergeInputs {
  kTrainedExperts,  // merge.experts: N dense models trained on the N subdomains (stage 1), expert n from model n
  kDenseCopies,     // merge.base_model copied merge.num_experts times (upcycling)
};

// The method-specific numbers a merge may read; each is one setting of the merge section.
enum class MergeParameter { kDropRatio, kNoiseStd };

struct MergeMethodSpec {
  std::string_view label;        // the tables' and report's name: "BTX", "Drop-Upcycling"
  std::string_view description;  // svmoe_merge.json's "description": what the method does
  MergeInputs inputs;
  std::vector<MergeParameter> parameters;  // the only method parameters it reads (hash, provenance)

  bool merges_trained_experts() const { return inputs == MergeInputs::kTrainedExperts; }
  bool reads(MergeParameter parameter) const;
};

const MergeMethodSpec& merge_method_spec(MergeMethod method);

// The setting a parameter is read from ("merge.drop_ratio"), and its name in svmoe_merge.json.
std::string_view merge_parameter_key(MergeParameter parameter);
std::string_view merge_parameter_name(MergeParameter parameter);

std::vector<MergeParameter> all_merge_parameters();

}  // namespace svmoe
