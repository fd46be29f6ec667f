// Reading back a JSON file svmoe wrote (results.json, svmoe_merge.json): every field's type
// checked, and an error that names the file, the field's path in it
// ("results.models[2].splits.test.ppl.mean") and how to write the file again, so that a
// hand-edited or truncated file says where it went wrong.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "svmoe/config/enums.h"

namespace svmoe {

class JsonFieldReader {
 public:
  // `hint` goes with every error: what the file is and how to write it again.
  JsonFieldReader(std::filesystem::path file, std::string hint) : file_(std::move(file)), hint_(std::move(hint)) {}

  // The file's content; a FormatError when it is not JSON.
  nlohmann::json parse() const;

  // `where` is the path of `object` itself ("" at the top level); each accessor appends `key`.
  const nlohmann::json& field(const nlohmann::json& object, const std::string& key, const std::string& where) const {
    if (!object.is_object() || !object.contains(key)) fail(path(where, key), "missing", "a value");
    return object.at(key);
  }
  template <typename T>
  T get(const nlohmann::json& object, const std::string& key, const std::string& where, const char* expected) const {
    const nlohmann::json& value = field(object, key, where);
    try {
      return value.get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(path(where, key), value.dump(), expected);
    }
  }
  // For fields older versions did not write: `fallback` when absent.
  template <typename T>
  T get_or(const nlohmann::json& object, const std::string& key, const std::string& where, T fallback,
           const char* expected) const {
    if (!object.is_object()) fail(where.empty() ? "its top level" : where, object.dump(), "a JSON object");
    return object.contains(key) ? get<T>(object, key, where, expected) : fallback;
  }
  // An enum by its spelling (config/enums.h).
  template <typename E>
  E option(const nlohmann::json& object, const std::string& key, const std::string& where) const {
    return option_named<E>(get<std::string>(object, key, where, "a string"), key, where);
  }
  template <typename E>
  E option_or(const nlohmann::json& object, const std::string& key, const std::string& where, E fallback) const {
    return option_named<E>(get_or<std::string>(object, key, where, enum_name(fallback), "a string"), key, where);
  }

  [[noreturn]] void fail(const std::string& field_path, const std::string& found, const std::string& expected) const;

 private:
  static std::string path(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }
  template <typename E>
  E option_named(const std::string& name, const std::string& key, const std::string& where) const {
    const auto value = enum_from_name<E>(name);
    if (!value) fail(path(where, key), "'" + name + "'", "one of " + names<E>());
    return *value;
  }
  template <typename E>
  static std::string names() {
    std::string out;
    for (const auto& name : enum_names<E>()) out += (out.empty() ? "" : ", ") + name;
    return out;
  }

  std::filesystem::path file_;
  std::string hint_;
};

}  // namespace svmoe
