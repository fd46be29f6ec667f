#include "svmoe/io/checkpoint_summary.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace svmoe {

TEST(CheckpointSummary, DescribesAnMoeCheckpointAndCountsItsParameters) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("mixtral_8e_top2"));
  const std::string text = describe_checkpoint(checkpoint);
  EXPECT_NE(text.find("mixtral (MoE)"), std::string::npos) << text;
  EXPECT_NE(text.find("experts     8 per layer, top-2"), std::string::npos) << text;
  EXPECT_NE(text.find("model.layers.0.block_sparse_moe.gate.weight"), std::string::npos) << text;
  // Every stored tensor is a parameter here, so the two counts agree.
  const auto total = text.find("total: ");
  ASSERT_NE(total, std::string::npos) << text;
  const std::string line = text.substr(total, text.find('\n', total) - total);
  const auto stored = line.substr(line.find("tensors, ") + 9, line.find(" parameters (") - line.find("tensors, ") - 9);
  EXPECT_NE(line.find("config.json implies " + stored + " parameters"), std::string::npos) << line;
}

}  // namespace svmoe
