#include "svmoe/config/merge_method.h"

#include <algorithm>

namespace svmoe {
namespace {

// The five methods, in the order of the MergeMethod enum. BTX is the paper's (SPEC.md §4);
// the upcycling methods are its baselines' (docs/upcycling.md).
MergeMethodSpec make_spec(MergeMethod method) {
  using P = MergeParameter;
  switch (method) {
    case MergeMethod::kBtx:
      return {"BTX",
              "BTX: trained experts' FFNs kept, other weights averaged, routers random",
              MergeInputs::kTrainedExperts,
              {}};
    case MergeMethod::kNaive:
      return {"Naive",
              "naive upcycling: every expert a copy of one dense model's FFN, routers random",
              MergeInputs::kDenseCopies,
              {}};
    case MergeMethod::kNoise:
      return {"Noise",
              "random-noise upcycling: copies of one dense FFN, drop_ratio of each expert's neurons + normal(0, "
              "noise_std)",
              MergeInputs::kDenseCopies,
              {P::kDropRatio, P::kNoiseStd}};
    case MergeMethod::kDropUpcycling:
      return {"Drop-Upcycling",
              "Drop-Upcycling: copies of one dense FFN, drop_ratio of each expert's neurons re-drawn from the "
              "replaced weights' normal",
              MergeInputs::kDenseCopies,
              {P::kDropRatio}};
    case MergeMethod::kBtxDropUpcycling:
      return {"BTX+Drop-Upcycling",
              "BTX + Drop-Upcycling: trained experts' FFNs with drop_ratio of each expert's neurons re-drawn, other "
              "weights averaged",
              MergeInputs::kTrainedExperts,
              {P::kDropRatio}};
  }
  return {};  // unreachable: every enumerator returns above
}

}  // namespace

bool MergeMethodSpec::reads(MergeParameter parameter) const {
  return std::find(parameters.begin(), parameters.end(), parameter) != parameters.end();
}

const MergeMethodSpec& merge_method_spec(MergeMethod method) {
  static const std::vector<MergeMethodSpec> specs = [] {
    std::vector<MergeMethodSpec> all;
    for (const MergeMethod m : enum_values<MergeMethod>()) all.push_back(make_spec(m));
    return all;
  }();
  return specs.at(static_cast<std::size_t>(method));
}

std::string_view merge_parameter_key(MergeParameter parameter) {
  switch (parameter) {
    case MergeParameter::kDropRatio:
      return "merge.drop_ratio";
    case MergeParameter::kNoiseStd:
      break;
  }
  return "merge.noise_std";
}

std::string_view merge_parameter_name(MergeParameter parameter) {
  return merge_parameter_key(parameter).substr(std::string_view("merge.").size());
}

std::vector<MergeParameter> all_merge_parameters() { return {MergeParameter::kDropRatio, MergeParameter::kNoiseStd}; }

}  // namespace svmoe
