#include "svmoe/config/merge_method.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "svmoe/config/setting_table.h"

namespace svmoe {

// Every method's descriptor is filled: a label the tables can show, a description for
// svmoe_merge.json, and parameters that are settings of the merge section. A method added to the
// enum without its descriptor fails here (and, first, at the descriptor's switch).
TEST(MergeMethod, EveryDescriptorIsComplete) {
  std::set<std::string_view> labels;
  for (const MergeMethod method : enum_values<MergeMethod>()) {
    const MergeMethodSpec& spec = merge_method_spec(method);
    EXPECT_FALSE(spec.label.empty()) << enum_name(method);
    EXPECT_FALSE(spec.description.empty()) << enum_name(method);
    EXPECT_TRUE(labels.insert(spec.label).second) << "two methods are labelled " << spec.label;
    for (const MergeParameter parameter : spec.parameters) {
      const std::string key(merge_parameter_key(parameter));  // a named string: GCC 16 warns of a temporary
      const SettingSpec& setting = setting_spec(key);
      EXPECT_TRUE(setting.affects_numbers) << setting.key;
    }
  }
}

TEST(MergeMethod, EachMethodReadsTheInputsAndParametersOfItsPaper) {
  using P = MergeParameter;
  EXPECT_TRUE(merge_method_spec(MergeMethod::kBtx).merges_trained_experts());
  EXPECT_TRUE(merge_method_spec(MergeMethod::kBtxDropUpcycling).merges_trained_experts());
  EXPECT_FALSE(merge_method_spec(MergeMethod::kNaive).merges_trained_experts());
  EXPECT_TRUE(merge_method_spec(MergeMethod::kBtx).parameters.empty());
  EXPECT_TRUE(merge_method_spec(MergeMethod::kNaive).parameters.empty());
  EXPECT_TRUE(merge_method_spec(MergeMethod::kDropUpcycling).reads(P::kDropRatio));
  EXPECT_FALSE(merge_method_spec(MergeMethod::kDropUpcycling).reads(P::kNoiseStd));
  EXPECT_TRUE(merge_method_spec(MergeMethod::kNoise).reads(P::kNoiseStd));
  EXPECT_EQ(merge_parameter_name(P::kNoiseStd), "noise_std");
}

}  // namespace svmoe
