#include "svmoe/config/setting_reader.h"

#include <algorithm>

#include "svmoe/config/setting_table.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

// Every typed read below checks the value's JSON type, then the row's range or choices
// (config/setting_table.h), and fails with the key, the file (or --set) it came from, the value
// and what was expected.
void SettingReader::fail(const std::string& key_path, const std::string& expected, const std::string& hint) const {
  throw ConfigError("config key '" + key_path + "' (from " + config_.origin(key_path) + ") is " +
                        config_.at(key_path).dump() + "; expected " + expected,
                    hint);
}

std::string SettingReader::string(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_string()) fail(key_path, "a string");
  return value.get<std::string>();
}

std::string SettingReader::choice(const std::string& key_path) const {
  const std::vector<std::string>& options = setting_spec(key_path).choices;
  const Json& value = config_.at(key_path);
  if (value.is_string()) {
    for (const auto& option : options) {
      if (value.get<std::string>() == option) return option;
    }
    // A misspelt choice gets the nearest one as its hint (edit distance, util/strings.h).
    const std::string suggestion = nearest_word(value.get<std::string>(), options);
    if (!suggestion.empty()) fail(key_path, "one of " + join(options, ", "), "did you mean '" + suggestion + "'?");
  }
  fail(key_path, "one of " + join(options, ", "));
}

std::int64_t SettingReader::integer(const std::string& key_path) const {
  const SettingSpec& spec = setting_spec(key_path);
  const Json& value = config_.at(key_path);
  if (!value.is_number_integer()) fail(key_path, "an integer");
  const auto result = value.get<std::int64_t>();
  if (result < spec.minimum.get<std::int64_t>() || result > spec.maximum.get<std::int64_t>()) {
    fail(key_path, "an integer in [" + spec.minimum.dump() + ", " + spec.maximum.dump() + "]");
  }
  return result;
}

double SettingReader::number(const std::string& key_path) const {
  const SettingSpec& spec = setting_spec(key_path);
  const Json& value = config_.at(key_path);
  if (!value.is_number()) fail(key_path, "a number");
  const auto result = value.get<double>();
  if (!(result >= spec.minimum.get<double>() && result <= spec.maximum.get<double>())) {
    fail(key_path, "a number in [" + spec.minimum.dump() + ", " + spec.maximum.dump() + "]");
  }
  return result;
}

bool SettingReader::boolean(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_boolean()) fail(key_path, "true or false");
  return value.get<bool>();
}

std::vector<std::string> SettingReader::strings(const std::string& key_path) const {
  const std::vector<std::string>& choices = setting_spec(key_path).choices;
  const Json& value = config_.at(key_path);
  if (!value.is_string() && !value.is_array()) fail(key_path, "a list of strings");
  const Json items = value.is_string() ? Json::array({value}) : value;
  std::vector<std::string> result;
  for (const auto& item : items) {
    if (!item.is_string()) fail(key_path, "a list of strings");
    const std::string text = item.get<std::string>();
    if (!choices.empty() && std::find(choices.begin(), choices.end(), text) == choices.end()) {
      const std::string suggestion = nearest_word(text, choices);
      throw ConfigError("config key '" + key_path + "' (from " + config_.origin(key_path) + ") holds '" + text +
                            "'; expected any of " + join(choices, ", "),
                        suggestion.empty() ? std::string() : "did you mean '" + suggestion + "'?");
    }
    result.push_back(text);
  }
  return result;
}

std::vector<std::int64_t> SettingReader::integers(const std::string& key_path, std::int64_t min) const {
  const Json& value = config_.at(key_path);
  if (!value.is_array()) fail(key_path, "a list of integers");
  std::vector<std::int64_t> result;
  for (const auto& n : value) {
    if (!n.is_number_integer() || n.get<std::int64_t>() < min) {
      fail(key_path, "a list of integers >= " + std::to_string(min));
    }
    result.push_back(n.get<std::int64_t>());
  }
  return result;
}

std::vector<double> SettingReader::positive_numbers(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_array()) fail(key_path, "a list of positive numbers");
  std::vector<double> result;
  for (const auto& w : value) {
    if (!w.is_number() || !(w.get<double>() > 0)) fail(key_path, "a list of positive numbers");
    result.push_back(w.get<double>());
  }
  return result;
}

std::map<std::string, std::int64_t> SettingReader::integer_mapping(const std::string& key_path, std::int64_t min,
                                                                   std::int64_t max) const {
  const Json& value = config_.at(key_path);
  std::map<std::string, std::int64_t> result;
  if (value.is_null()) return result;
  const std::string expected =
      "a mapping {name: integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]}";
  if (!value.is_object()) fail(key_path, expected);
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < min ||
        it.value().get<std::int64_t>() > max) {
      throw ConfigError("config key '" + key_path + "' (from " + config_.origin(key_path) + ") maps '" + it.key() +
                            "' to " + it.value().dump() + "; expected " + expected,
                        "give each name an integer in that range");
    }
    result[it.key()] = it.value().get<std::int64_t>();
  }
  return result;
}

std::filesystem::path SettingReader::path(const std::string& key_path, const std::string& hint) const {
  const SettingSpec& row = setting_spec(key_path);
  return path(key_path, row.required, hint.empty() ? row.missing_hint : hint);
}

void SettingReader::require(const std::string& key_path, bool given, const std::string& hint) const {
  if (!given) throw ConfigError("config key '" + key_path + "' is required but not set", hint);
}

std::filesystem::path SettingReader::path(const std::string& key_path, bool required, const std::string& hint) const {
  const Json& value = config_.at(key_path);
  if (value.is_null() || (value.is_string() && value.get<std::string>().empty())) {
    require(key_path, !required, hint);
    return {};
  }
  if (!value.is_string()) fail(key_path, "a path (a string)", hint);
  return value.get<std::string>();
}

}  // namespace svmoe
