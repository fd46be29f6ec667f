#include "svmoe/config/setting_reader.h"

#include <gtest/gtest.h>

#include "svmoe/config/settings.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

TEST(SettingReader, BadValueNamesKeyOriginAndExpectation) {
  ConfigTree config(default_config());
  config.apply_override("forward.model=m");
  config.apply_override("forward.input=i");
  config.apply_override("forward.output=o");
  config.apply_override("forward.dtype=float64");
  try {
    parse_forward_settings(config);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("forward.dtype"), std::string::npos) << message;
    EXPECT_NE(message.find("--set"), std::string::npos) << message;
    EXPECT_NE(message.find("float64"), std::string::npos) << message;
    EXPECT_NE(message.find("bfloat16"), std::string::npos) << message;
  }
}

TEST(SettingReader, TypoInAChoiceGetsASuggestion) {
  ConfigTree config(default_config());
  config.apply_override("runtime.log_level=inf");
  try {
    parse_runtime_settings(config);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.hint().find("info"), std::string::npos) << e.hint();
  }
}

TEST(SettingReader, IntegersAreRangeChecked) {
  ConfigTree config(default_config());
  config.apply_override("runtime.threads=-3");
  EXPECT_THROW(parse_runtime_settings(config), ConfigError);
  ConfigTree config2(default_config());
  config2.apply_override("runtime.threads=two");
  EXPECT_THROW(parse_runtime_settings(config2), ConfigError);
}

TEST(SettingReader, AStagesOwnKeyIsCheckedByTheTrainRowAndNamedAsWritten) {
  ConfigTree config(default_config());
  config.set("train_router.train.learning_rate", 11.0, "router.yaml");
  const std::string message =
      test::error_message<ConfigError>([&] { SettingReader(config).number("train_router.train.learning_rate"); });
  EXPECT_NE(message.find("train_router.train.learning_rate"), std::string::npos) << message;
  EXPECT_NE(message.find("router.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("[0.0, 10.0]"), std::string::npos) << message;
}

TEST(SettingReader, ARequiredPathSaysWhatToGive) {
  ConfigTree config(default_config());
  const std::string message =
      test::error_message<ConfigError>([&] { SettingReader(config).path("merge.output", "give --output DIR"); });
  EXPECT_NE(message.find("merge.output"), std::string::npos) << message;
  EXPECT_TRUE(SettingReader(config).path("report.output").empty());  // optional: unset is fine
}

TEST(SettingReader, ListsOfIntegersAndPositiveNumbersAreChecked) {
  ConfigTree config(default_config());
  config.set("finetune.subdomains", Json::array({0, 2}), "f.yaml");
  EXPECT_EQ(SettingReader(config).integers("finetune.subdomains", 0), (std::vector<std::int64_t>{0, 2}));
  config.set("finetune.subdomains", Json::array({0, -1}), "f.yaml");
  EXPECT_THROW(SettingReader(config).integers("finetune.subdomains", 0), ConfigError);
  config.set("finetune.subdomain_weights", Json::array({1.0, 0.0}), "f.yaml");
  EXPECT_THROW(SettingReader(config).positive_numbers("finetune.subdomain_weights"), ConfigError);
}

}  // namespace svmoe
