// Reads one typed value from the config tree, checked against its row of the setting table
// (config/setting_table.h: type, range, choices, required). Every error names the key path,
// where the value came from, what was found and what was expected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/enums.h"

namespace svmoe {

class SettingReader {
 public:
  explicit SettingReader(const ConfigTree& config) : config_(config) {}

  std::string string(const std::string& key_path) const;
  std::int64_t integer(const std::string& key_path) const;
  double number(const std::string& key_path) const;
  bool boolean(const std::string& key_path) const;
  // One of the row's choices, as written.
  std::string choice(const std::string& key_path) const;
  template <typename E>
  E option(const std::string& key_path) const {
    return *enum_from_name<E>(choice(key_path));
  }
  // A list of strings (a single string is a list of one), each one of the row's choices if it has any.
  std::vector<std::string> strings(const std::string& key_path) const;
  template <typename E>
  std::vector<E> options(const std::string& key_path) const {
    std::vector<E> result;
    for (const auto& name : strings(key_path)) result.push_back(*enum_from_name<E>(name));
    return result;
  }
  std::vector<std::int64_t> integers(const std::string& key_path, std::int64_t min) const;
  std::vector<double> positive_numbers(const std::string& key_path) const;
  // A mapping {name: integer in [min, max]}; null is empty.
  std::map<std::string, std::int64_t> integer_mapping(const std::string& key_path, std::int64_t min,
                                                      std::int64_t max) const;
  // An empty path when the key is null or ""; an error if the row says it is required.
  std::filesystem::path path(const std::string& key_path, const std::string& hint = {}) const;
  // As path(), required or not as the caller says (a requirement that depends on other keys).
  std::filesystem::path path(const std::string& key_path, bool required, const std::string& hint) const;

  // Where the key's value came from (a file, --set, a flag, the default).
  std::string origin(const std::string& key_path) const { return config_.origin(key_path); }
  // The error of a required path that is not set, unless `given` (a typed check after reading).
  void require(const std::string& key_path, bool given, const std::string& hint) const;

  [[noreturn]] void fail(const std::string& key_path, const std::string& expected, const std::string& hint = {}) const;

 private:
  const ConfigTree& config_;
};

}  // namespace svmoe
