#include "svmoe/config/config_tree.h"

#include <gtest/gtest.h>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {
Json schema() {
  return Json{{"runtime", {{"device", "auto"}, {"threads", 0}}},
              {"train", {{"lr", 0.001}, {"steps", 100}, {"name", nullptr}, {"tags", Json::array()}}}};
}
}  // namespace

TEST(ConfigTree, MergesYamlThenOverridesInOrder) {
  test::ScratchDir dir;
  test::write_text(dir / "a.yaml", "train:\n  lr: 3.0e-4\n  steps: 20\n  name: 'run-1'\n  tags: [x, y]\n");
  ConfigTree config(schema());
  config.merge_file(dir / "a.yaml");
  config.apply_override("train.steps=50");
  config.apply_override("runtime.device=cpu");
  EXPECT_DOUBLE_EQ(config.at("train.lr").get<double>(), 3.0e-4);
  EXPECT_EQ(config.at("train.steps").get<int>(), 50);
  EXPECT_EQ(config.at("train.name").get<std::string>(), "run-1");
  EXPECT_EQ(config.at("train.tags"), Json({"x", "y"}));
  EXPECT_EQ(config.at("runtime.device").get<std::string>(), "cpu");
  EXPECT_EQ(config.at("runtime.threads").get<int>(), 0);
  EXPECT_EQ(config.origin("train.lr"), (dir / "a.yaml").string());
  EXPECT_EQ(config.origin("train.steps"), "--set");
  EXPECT_EQ(config.origin("runtime.threads"), "default");
}

TEST(ConfigTree, ReadsJsonLikeYaml) {
  test::ScratchDir dir;
  test::write_text(dir / "a.json", R"({"train": {"steps": 7}})");
  ConfigTree config(schema());
  config.merge_file(dir / "a.json");
  EXPECT_EQ(config.at("train.steps").get<int>(), 7);
}

TEST(ConfigTree, QuotedYamlScalarsStayStrings) {
  const Json json = yaml_to_json("a: '123'\nb: 123\nc: true\nd: \"true\"\ne: ~\nf: 1e3\n", "inline");
  EXPECT_TRUE(json["a"].is_string());
  EXPECT_TRUE(json["b"].is_number_integer());
  EXPECT_TRUE(json["c"].is_boolean());
  EXPECT_TRUE(json["d"].is_string());
  EXPECT_TRUE(json["e"].is_null());
  EXPECT_TRUE(json["f"].is_number_float());
}

TEST(ConfigTree, UnknownKeySuggestsTheNearest) {
  test::ScratchDir dir;
  test::write_text(dir / "bad.yaml", "train:\n  stpes: 5\n");
  ConfigTree config(schema());
  try {
    config.merge_file(dir / "bad.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.stpes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.yaml"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("train.steps"), std::string::npos) << e.hint();
  }
}

TEST(ConfigTree, BadYamlNamesFileAndLine) {
  test::ScratchDir dir;
  test::write_text(dir / "broken.yaml", "train:\n  lr: 1\n  steps: [1, 2\n");
  ConfigTree config(schema());
  const std::string message = test::error_message<ConfigError>([&] { config.merge_file(dir / "broken.yaml"); });
  EXPECT_NE(message.find("broken.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("line"), std::string::npos) << message;
}

TEST(ConfigTree, RejectsScalarWhereASectionBelongs) {
  ConfigTree config(schema());
  const std::string message = test::error_message<ConfigError>([&] { config.apply_override("train=5"); });
  EXPECT_NE(message.find("must be a section"), std::string::npos) << message;
}

TEST(ConfigTree, RejectsMalformedOverrides) {
  ConfigTree config(schema());
  EXPECT_THROW(config.apply_override("no-equals-sign"), ConfigError);
  EXPECT_THROW(config.apply_override("train..steps=1"), ConfigError);
  EXPECT_THROW(config.apply_override("train.nope=1"), ConfigError);
}

TEST(ConfigTree, MissingFileIsAConfigError) {
  ConfigTree config(schema());
  EXPECT_THROW(config.merge_file("/no/such/config.yaml"), ConfigError);
}

}  // namespace svmoe
