// Laws of the setting rows bound to struct members (config/setting_rows.h): each row reads its
// key into its own member and no other, its default is its member's initialiser, and every row
// but records, mappings and stage `train` sections is bound.
#include "svmoe/config/setting_rows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <type_traits>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace {

// Every required path set, so that read_settings<S> reads.
ConfigTree config_with_required_paths() {
  ConfigTree config(default_config());
  for (const auto& row : setting_table()) {
    if (row.type == SettingType::kPath && row.required) config.set(row.key, "/tmp/given/" + row.key, "test");
  }
  return config;
}

template <typename S>
std::vector<Json> values_of(const S& settings) {
  std::vector<Json> values;
  for (const auto& row : bound_settings<S>()) values.push_back(row.read ? row.value(settings) : Json());
  return values;
}

// For every bound row of S: a config that changes only that key parses into a struct whose
// member for that row holds the new value and whose other members hold what they held.
template <typename S>
void each_row_reads_its_own_member() {
  const ConfigTree base = config_with_required_paths();
  const std::vector<Json> before = values_of(read_settings<S>(SettingReader(base)));
  const auto& rows = bound_settings<S>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].read) continue;
    const Json changed = test::another_valid_value(rows[i].spec);
    ASSERT_FALSE(changed.is_null()) << rows[i].spec.key << " has no second value to try";
    ConfigTree config = base;
    config.set(rows[i].spec.key, changed, "test");
    const std::vector<Json> after = values_of(read_settings<S>(SettingReader(config)));
    for (std::size_t j = 0; j < rows.size(); ++j) {
      if (j == i) {
        EXPECT_EQ(after[j], changed) << rows[i].spec.key << " does not reach its member";
      } else {
        EXPECT_EQ(after[j], before[j]) << "setting " << rows[i].spec.key << " changed the member of "
                                       << rows[j].spec.key;
      }
    }
  }
}

template <typename S>
void defaults_are_the_initialisers() {
  const S defaults;
  for (const auto& row : bound_settings<S>()) {
    if (row.read) {
      EXPECT_EQ(row.value(defaults), row.spec.default_value) << row.spec.key;
    }
  }
}

}  // namespace

TEST(SettingRows, EachRowReadsItsOwnMemberAndNoOther) {
  for_each_settings_struct([](auto* tag) { each_row_reads_its_own_member<std::remove_pointer_t<decltype(tag)>>(); });
}

TEST(SettingRows, DefaultsAreTheStructsInitialisers) {
  for_each_settings_struct([](auto* tag) { defaults_are_the_initialisers<std::remove_pointer_t<decltype(tag)>>(); });
}

TEST(SettingRows, OnlyRecordsMappingsAndStageTrainSectionsAreReadByHand) {
  std::set<std::string> unbound;
  for_each_settings_struct([&](auto* tag) {
    for (const auto& row : bound_settings<std::remove_pointer_t<decltype(tag)>>()) {
      if (!row.read) unbound.insert(row.spec.key);
    }
  });
  for (const auto& row : setting_table()) {
    const bool by_hand = row.type == SettingType::kRecords || row.type == SettingType::kMapping ||
                         row.type == SettingType::kTrainOverrides;
    EXPECT_EQ(unbound.count(row.key), by_hand ? 1u : 0u) << row.key;
  }
}

// svmoe run's step hash shows each row it counts by the row's value (hashed_settings).
TEST(SettingRows, EveryRowAStepHashCountsHasAValue) {
  for_each_settings_struct([&](auto* tag) {
    for (const auto& row : bound_settings<std::remove_pointer_t<decltype(tag)>>()) {
      const SettingSpec& spec = row.spec;
      const bool hashed = spec.affects_numbers && !spec.set_by_run && spec.type != SettingType::kTrainOverrides;
      if (hashed) {
        EXPECT_TRUE(static_cast<bool>(row.value)) << spec.key;
      }
    }
  });
}

// A value the step keeps from the config is hashed as written (an integer stays an integer);
// one the step sets is hashed as its typed value; an unread parameter is not hashed.
TEST(SettingRows, AHashShowsAKeptValueAsWrittenAndASetOneAsTyped) {
  ConfigTree config(default_config());
  config.set("finetune.load_balancing.alpha", 1, "test");
  config.set("prepare.corpus", "one.jsonl", "test");
  const auto written = [&](const std::string& key) { return config.at(key); };
  FinetuneSettings configured = parse_finetune_settings(config, PathsFrom::kRunLayout);
  configured.load_balancing.method = LoadBalancingMethod::kSwitch;
  const Json kept = hashed_settings(configured, configured, written);
  EXPECT_TRUE(kept.at("finetune.load_balancing.alpha").is_number_integer()) << kept.dump();
  FinetuneSettings used = configured;
  used.load_balancing.alpha = 2.0;
  const Json set = hashed_settings(used, configured, written);
  EXPECT_TRUE(set.at("finetune.load_balancing.alpha").is_number_float()) << set.dump();
  used.load_balancing.method = LoadBalancingMethod::kNone;
  EXPECT_FALSE(hashed_settings(used, configured, written).contains("finetune.load_balancing.alpha"));
  const PrepareSettings prepare = parse_prepare_settings(config, PathsFrom::kRunLayout);
  EXPECT_EQ(hashed_settings(prepare, prepare, written).at("prepare.corpus"), "one.jsonl");
}

TEST(SettingRows, ARequiredPathsErrorGivesItsRowsHint) {
  ConfigTree config(default_config());
  try {
    read_settings<ServeSettings>(SettingReader(config));
    FAIL() << "serve.model is required";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("serve.model"), std::string::npos) << error.what();
    EXPECT_NE(error.hint().find("--model DIR"), std::string::npos) << error.hint();
  }
}

}  // namespace svmoe
