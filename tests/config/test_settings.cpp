#include "svmoe/config/settings.h"

#include <gtest/gtest.h>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

TEST(Settings, DefaultsParse) {
  ConfigTree config(default_config());
  const RuntimeSettings runtime = parse_runtime_settings(config);
  EXPECT_EQ(runtime.device, "auto");
  EXPECT_EQ(runtime.log_level, "info");
}

TEST(Settings, ForwardNeedsModelAndInput) {
  ConfigTree config(default_config());
  config.apply_override("forward.output=out.safetensors");
  const std::string message = test::error_message<ConfigError>([&] { parse_forward_settings(config); });
  EXPECT_NE(message.find("forward.model"), std::string::npos) << message;
}

TEST(Settings, AStagesOwnTrainKeysOverrideTheTrainSection) {
  ConfigTree config(default_config());
  config.set("train.steps", 100, "base.yaml");
  config.set("train.learning_rate", 1e-3, "base.yaml");
  config.set("train_router.train.steps", 30, "router.yaml");
  const TrainSettings router = parse_train_settings(config, "train_router");
  EXPECT_EQ(router.steps, 30);
  EXPECT_DOUBLE_EQ(router.learning_rate, 1e-3);  // from train
  EXPECT_EQ(parse_train_settings(config, "finetune").steps, 100);
  EXPECT_EQ(parse_train_settings(config).steps, 100);
  // An error in a stage's own key names where it came from.
  config.set("finetune.train.precision", "bf17", "ft.yaml");
  const std::string message = test::error_message<ConfigError>([&] { parse_train_settings(config, "finetune"); });
  EXPECT_NE(message.find("finetune.train.precision"), std::string::npos) << message;
  EXPECT_NE(message.find("ft.yaml"), std::string::npos) << message;
}

// Each merge method names its inputs: trained experts, or one model and a number of copies.
TEST(Settings, AMergeMethodAsksForItsOwnInputs) {
  ConfigTree config(default_config());
  config.set("merge.output", "moe", "test");
  config.set("merge.method", "drop_upcycling", "exp.yaml");
  std::string message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.base_model"), std::string::npos) << message;
  config.set("merge.base_model", "dense", "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.num_experts"), std::string::npos) << message;
  config.set("merge.num_experts", 8, "exp.yaml");
  const MergeSettings drop = parse_merge_settings(config);
  EXPECT_EQ(drop.method, MergeMethod::kDropUpcycling);
  EXPECT_EQ(drop.num_experts, 8);
  EXPECT_DOUBLE_EQ(drop.drop_ratio, 0.5);
  config.set("merge.experts", Json::array({"a", "b"}), "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.experts"), std::string::npos) << message;
  EXPECT_NE(message.find("expected empty with merge.method drop_upcycling"), std::string::npos) << message;

  config.set("merge.method", "btx_drop_upcycling", "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.base_model"), std::string::npos) << message;
  config.set("merge.base_model", "", "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("'merge.num_experts' (from exp.yaml) is 8; expected 0 or 2"), std::string::npos) << message;
  config.set("merge.num_experts", 0, "exp.yaml");
  EXPECT_EQ(parse_merge_settings(config).num_experts, 2);
  config.set("merge.num_experts_per_tok", 3, "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("at most the number of experts (2)"), std::string::npos) << message;
  config.set("merge.num_experts_per_tok", 2, "exp.yaml");
  config.set("merge.drop_ratio", 1.5, "exp.yaml");
  EXPECT_THROW(parse_merge_settings(config), ConfigError);
}

// The shared expert's source: `base` beside trained experts needs merge.base_model; a soft MoE
// has no shared expert.
TEST(Settings, ASharedExpertFromTheBaseNeedsTheBaseModel) {
  ConfigTree config(default_config());
  config.set("merge.output", "moe", "test");
  config.set("merge.experts", Json::array({"a", "b"}), "exp.yaml");
  config.set("merge.shared_expert", "base", "exp.yaml");
  std::string message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.base_model"), std::string::npos) << message;
  EXPECT_NE(message.find("required"), std::string::npos) << message;
  config.set("merge.base_model", "dense", "exp.yaml");
  const MergeSettings s = parse_merge_settings(config);
  EXPECT_EQ(s.shared_expert, SharedExpertInit::kBase);
  EXPECT_EQ(s.base_model, "dense");
  config.set("merge.shared_expert", "mean", "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("expected unset with merge.method btx"), std::string::npos) << message;
  config.set("merge.base_model", "", "exp.yaml");
  config.set("merge.moe_kind", "soft", "exp.yaml");
  message = test::error_message<ConfigError>([&] { parse_merge_settings(config); });
  EXPECT_NE(message.find("merge.shared_expert"), std::string::npos) << message;
  EXPECT_NE(message.find("soft"), std::string::npos) << message;
}

}  // namespace svmoe
