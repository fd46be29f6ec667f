#include "svmoe/config/setting_table.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "svmoe/config/settings.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace {

void collect_leaves(const Json& node, const std::string& prefix, std::vector<std::string>& out) {
  if (!node.is_object()) {
    out.push_back(prefix);
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    collect_leaves(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  }
}

}  // namespace

TEST(SettingTable, DocsConfigMdIsTheTableRendered) {
  std::ifstream in(std::string(SVMOE_SOURCE_DIR) + "/docs/config.md", std::ios::binary);
  ASSERT_TRUE(in) << "docs/config.md is missing";
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(text.str() == config_reference_markdown())
      << "docs/config.md differs from the setting table: run `build/svmoe config-reference > docs/config.md`";
}

TEST(SettingTable, EveryDefaultKeyHasExactlyOneRow) {
  std::vector<std::string> leaves;
  collect_leaves(default_config(), "", leaves);
  std::set<std::string> keys;
  for (const auto& spec : setting_table()) EXPECT_TRUE(keys.insert(spec.key).second) << "two rows for " << spec.key;
  for (const auto& leaf : leaves) {
    // A stage's own `train` section is one row; its keys are the train section's.
    const auto own = leaf.find(".train.");
    const std::string key = own != std::string::npos && leaf.rfind("train.", 0) != 0 ? leaf.substr(0, own + 6) : leaf;
    EXPECT_EQ(keys.count(key), 1u) << leaf;
  }
}

TEST(SettingTable, DefaultsParseToTheStructsInitialisers) {
  ConfigTree config(default_config());
  const TrainSettings train = parse_train_settings(config);
  const TrainSettings expected;
  EXPECT_EQ(train.steps, expected.steps);
  EXPECT_EQ(train.schedule, expected.schedule);
  EXPECT_EQ(train.precision, expected.precision);
  EXPECT_DOUBLE_EQ(train.eps, expected.eps);
  config.set("finetune.model", "m", "test");
  config.set("finetune.dataset", "d", "test");
  config.set("finetune.output", "o", "test");
  const FinetuneSettings finetune = parse_finetune_settings(config);
  EXPECT_EQ(finetune.init, ModelInit::kPretrained);
  EXPECT_EQ(finetune.load_balancing.method, LoadBalancingMethod::kNone);
  EXPECT_EQ(finetune.load_balancing.pooling, LoadBalancingPooling::kPooled);
  EXPECT_DOUBLE_EQ(finetune.load_balancing.alpha, LoadBalancingSettings{}.alpha);
}

TEST(SettingTable, RangesAndChoicesComeFromTheTable) {
  ConfigTree config(default_config());
  config.set("train.steps", 0, "test.yaml");
  std::string message = test::error_message<ConfigError>([&] { parse_train_settings(config); });
  EXPECT_NE(message.find("train.steps"), std::string::npos) << message;
  EXPECT_NE(message.find("[1, 1099511627776]"), std::string::npos) << message;

  ConfigTree stage(default_config());
  stage.set("finetune.train.schedule", "cosin", "stage.yaml");
  message = test::error_message<ConfigError>([&] { parse_train_settings(stage, "finetune"); });
  EXPECT_NE(message.find("finetune.train.schedule"), std::string::npos) << message;
  EXPECT_NE(message.find("cosine, linear, constant"), std::string::npos) << message;
}

TEST(SettingTable, ALongListOfChoicesChecksEveryItem) {
  ConfigTree config(default_config());
  config.set("eval.splits", Json::array({"test", "tset"}), "eval.yaml");
  config.set("eval.models", Json::array({{{"name", "A"}, {"path", "a"}}}), "eval.yaml");
  config.set("eval.dataset", "d", "eval.yaml");
  config.set("eval.output", "o", "eval.yaml");
  const std::string message = test::error_message<ConfigError>([&] { parse_eval_settings(config); });
  EXPECT_NE(message.find("'tset'"), std::string::npos) << message;
  EXPECT_NE(message.find("train, valid, test"), std::string::npos) << message;
}

TEST(SettingTable, TheLbCoefficientHasOneNameAndTheOldOneSaysSo) {
  ConfigTree config(default_config());
  const std::string message =
      test::error_message<ConfigError>([&] { config.apply_override("merge.router_aux_loss_coef=0.02"); });
  EXPECT_NE(message.find("renamed to 'finetune.load_balancing.alpha'"), std::string::npos) << message;

  config.apply_override("finetune.load_balancing.alpha=0.02");
  EXPECT_EQ(config.at("finetune.load_balancing.alpha"), 0.02);
}

TEST(SettingTable, RunLaysOutOnlyPathsAndPerStepKeys) {
  // What svmoe run sets must never be something a user tunes and expects to be hashed.
  for (const auto& spec : setting_table()) {
    if (!spec.set_by_run) continue;
    const bool path_like = spec.type == SettingType::kPath || spec.type == SettingType::kStrings ||
                           spec.type == SettingType::kRecords || spec.type == SettingType::kIntegers;
    // Per-step keys that the pipeline hashes itself (pipeline.cpp: each merge step adds its method and count,
    // pair_experts and eval the coverage).
    const bool per_step = spec.key == "finetune.init" || spec.key == "finetune.load_balancing.method" ||
                          spec.key == "merge.method" || spec.key == "merge.num_experts" ||
                          spec.key == "train_experts.coverage" || spec.key == "eval.btm.coverage";
    EXPECT_TRUE(path_like || per_step) << spec.key;
  }
}

}  // namespace svmoe
