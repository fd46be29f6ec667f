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

}  // namespace svmoe
