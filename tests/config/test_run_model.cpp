#include "svmoe/config/run_model.h"

#include <gtest/gtest.h>

#include <set>

namespace svmoe {

TEST(RunModel, ThePapersFiveKeepTheirNames) {
  std::vector<std::string> names;
  for (const RunModel& model : paper_models()) names.push_back(run_model_name(model));
  EXPECT_EQ(names, (std::vector<std::string>{"dense", "btx", "btx_lb", "svmoe", "svmoe_lb"}));
}

TEST(RunModel, EveryNameRoundTripsAndIsUnique) {
  const auto names = run_model_names();
  EXPECT_EQ(names.size(), 1u + 8u * 5u);  // dense, and eight per merge method
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  for (const auto& name : names) {
    const auto model = run_model_from_name(name);
    ASSERT_TRUE(model.has_value()) << name;
    EXPECT_EQ(run_model_name(*model), name);
  }
  const auto drop = run_model_from_name("drop_upcycling_svmoe_lb");
  ASSERT_TRUE(drop.has_value());
  EXPECT_EQ(drop->method, MergeMethod::kDropUpcycling);
  EXPECT_TRUE(drop->supervised_router);
  EXPECT_TRUE(drop->load_balanced);
  const auto literal = run_model_from_name("svmoe_softmax_then_cross_entropy_lb");
  ASSERT_TRUE(literal.has_value());
  EXPECT_EQ(literal->method, MergeMethod::kBtx);
  EXPECT_EQ(literal->router_loss, RouterLoss::kSoftmaxThenCrossEntropy);
  EXPECT_TRUE(literal->load_balanced);
  EXPECT_FALSE(run_model_from_name("btx_softmax_then_cross_entropy").has_value());  // a loss needs stage 3
  EXPECT_FALSE(run_model_from_name("btx_svmoe").has_value());  // BTX's SvMoE is spelt `svmoe`
  EXPECT_FALSE(run_model_from_name("moe").has_value());
}

}  // namespace svmoe
