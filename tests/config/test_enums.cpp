#include "svmoe/config/enums.h"

#include <gtest/gtest.h>

namespace svmoe {

template <typename E>
void expect_names_round_trip() {
  for (const auto& name : enum_names<E>()) {
    const auto value = enum_from_name<E>(name);
    ASSERT_TRUE(value.has_value()) << name;
    EXPECT_EQ(enum_name(*value), name);
  }
  EXPECT_FALSE(enum_from_name<E>("no such name").has_value());
}

TEST(Enums, EveryNameRoundTripsAndAnUnknownOneIsNone) {
  expect_names_round_trip<ExpertPath>();
  expect_names_round_trip<ForwardDtype>();
  expect_names_round_trip<TokenizerModelType>();
  expect_names_round_trip<ClusterSizes>();
  expect_names_round_trip<LrSchedule>();
  expect_names_round_trip<Precision>();
  expect_names_round_trip<ModelInit>();
  expect_names_round_trip<LoadBalancingMethod>();
  expect_names_round_trip<LoadBalancingPooling>();
  expect_names_round_trip<MissingTarget>();
  expect_names_round_trip<DataSplit>();
  expect_names_round_trip<MergeMethod>();
  expect_names_round_trip<RouterInit>();
  expect_names_round_trip<MoeKind>();
  expect_names_round_trip<SharedExpertInit>();
  expect_names_round_trip<ExpertCoverage>();
  expect_names_round_trip<EnsembleWeighting>();
}

TEST(Enums, NamesAreTheConfigSpellings) {
  EXPECT_STREQ(enum_name(Precision::kBf16Mixed), "bf16_mixed");
  EXPECT_STREQ(enum_name(ForwardDtype::kCheckpoint), "auto");
  EXPECT_STREQ(enum_name(MergeMethod::kBtxDropUpcycling), "btx_drop_upcycling");
  EXPECT_EQ(enum_from_name<LoadBalancingMethod>("aux_free"), LoadBalancingMethod::kAuxFree);
}

}  // namespace svmoe
