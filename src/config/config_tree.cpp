#include "svmoe/config/config_tree.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <regex>

#include "svmoe/config/setting_table.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

// yaml-cpp hands every scalar over as text; its type comes from YAML 1.2's core schema (null,
// booleans, integers, floats, .inf), so `lr: 3e-4` is a number and `name: "3"` a string. An
// integer too large for 64 bits falls through to a float.
Json yaml_scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted in the file: a string, whatever it looks like
  static const std::regex null_re("~|null|Null|NULL|");
  static const std::regex true_re("true|True|TRUE");
  static const std::regex false_re("false|False|FALSE");
  static const std::regex int_re("[-+]?[0-9]+");
  static const std::regex float_re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, null_re)) return nullptr;
  if (std::regex_match(text, true_re)) return true;
  if (std::regex_match(text, false_re)) return false;
  if (std::regex_match(text, int_re)) {
    errno = 0;
    const long long value = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == 0) return value;
  }
  if (std::regex_match(text, float_re)) return std::strtod(text.c_str(), nullptr);
  if (text == ".inf" || text == "+.inf") return std::numeric_limits<double>::infinity();
  if (text == "-.inf") return -std::numeric_limits<double>::infinity();
  return text;
}

Json yaml_node_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      Json array = Json::array();
      for (const auto& item : node) array.push_back(yaml_node_to_json(item));
      return array;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      for (const auto& item : node) object[item.first.as<std::string>()] = yaml_node_to_json(item.second);
      return object;
    }
  }
  return nullptr;
}

std::string join_key(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it) keys.push_back(it.key());
  return keys;
}

std::string type_name(const Json& value) {
  if (value.is_object()) return "a section";
  if (value.is_array()) return "a list";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "true/false";
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  return "null";
}

}  // namespace

Json yaml_to_json(const std::string& text, const std::string& source_name) {
  try {
    return yaml_node_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw ConfigError("'" + source_name + "' line " + std::to_string(e.mark.line + 1) + ", column " +
                          std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg,
                      "fix the YAML syntax there (indentation, a missing ':' or quote)");
  }
}

Json read_config_file(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) {
    throw ConfigError("config file '" + path.string() + "' does not exist", "check the path given to -c/--config");
  }
  const std::string text = read_text_file(path);
  const std::string extension = path.extension().string();
  Json tree;
  if (extension == ".json") {
    try {
      tree = Json::parse(text);
    } catch (const Json::parse_error& e) {
      throw ConfigError("'" + path.string() + "': not valid JSON: " + e.what(),
                        "fix the JSON syntax at that byte, or write the config in YAML");
    }
  } else if (extension == ".yaml" || extension == ".yml") {
    tree = yaml_to_json(text, path.string());
  } else {
    throw ConfigError("config file '" + path.string() + "' has extension '" + extension + "'",
                      "name it .yaml, .yml or .json");
  }
  if (tree.is_null()) tree = Json::object();
  if (!tree.is_object()) {
    throw ConfigError("'" + path.string() + "': the top level must be a mapping of sections, found " + type_name(tree));
  }
  return tree;
}

ConfigTree::ConfigTree(Json defaults) : schema_(std::move(defaults)), tree_(schema_) {}

void ConfigTree::merge_file(const std::filesystem::path& path) { merge(read_config_file(path), path.string()); }

void ConfigTree::merge(const Json& values, const std::string& origin) {
  merge_into(tree_, values, "", schema_, origin);
}

// Layers merge key by key against the schema (the defaults' shape): a key the schema lacks is an
// error with a renamed-to or did-you-mean hint, a section must stay a section, and each leaf
// remembers which file or --set it came from, so a later error can name it.
void ConfigTree::merge_into(Json& target, const Json& source, const std::string& prefix, const Json& schema,
                            const std::string& origin) {
  for (auto it = source.begin(); it != source.end(); ++it) {
    const std::string key_path = join_key(prefix, it.key());
    if (!schema.contains(it.key())) {
      for (const auto& [old_key, new_key] : renamed_settings()) {
        if (key_path == old_key) {
          throw ConfigError("config key '" + key_path + "' (from " + origin + ") was renamed to '" + new_key + "'",
                            "write it as " + new_key);
        }
      }
      const std::string suggestion = nearest_word(it.key(), keys_of(schema));
      std::string hint = suggestion.empty() ? "valid keys here: " + join(keys_of(schema), ", ")
                                            : "did you mean '" + join_key(prefix, suggestion) + "'?";
      throw ConfigError("unknown config key '" + key_path + "' (from " + origin + ")", hint);
    }
    const Json& expected = schema.at(it.key());
    if (expected.is_object()) {
      if (it.value().is_null()) continue;  // an empty section ("forward:" with nothing under it)
      if (!it.value().is_object()) {
        throw ConfigError(
            "config key '" + key_path + "' (from " + origin + ") must be a section, found " + type_name(it.value()),
            "valid keys inside it: " + join(keys_of(expected), ", "));
      }
      merge_into(target[it.key()], it.value(), key_path, expected, origin);
    } else {
      target[it.key()] = it.value();
      origins_[key_path] = origin;
    }
  }
}

// --set KEY=VALUE: the value is parsed as YAML, so `--set train.lr=3e-4` is a number and
// `--set run.models=[btx,svmoe]` a list, as they would be in the file.
void ConfigTree::apply_override(const std::string& assignment, const std::string& origin) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw ConfigError("override '" + assignment + "' is not of the form key.path=value",
                      "write e.g. --set runtime.device=cpu");
  }
  const std::string key_path = assignment.substr(0, equals);
  set(key_path, yaml_to_json(assignment.substr(equals + 1), origin + " " + key_path), origin);
}

void ConfigTree::set(const std::string& key_path, Json value, const std::string& origin) {
  // Build {"a": {"b": {"c": value}}} and merge it like a file.
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto dot = key_path.find('.', start);
    parts.push_back(key_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  Json nested = std::move(value);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (it->empty()) throw ConfigError("config key path '" + key_path + "' (from " + origin + ") has an empty part");
    Json wrapper = Json::object();
    wrapper[*it] = std::move(nested);
    nested = std::move(wrapper);
  }
  merge(nested, origin);
}

const Json& ConfigTree::at(const std::string& key_path) const {
  const Json* node = &tree_;
  std::size_t start = 0;
  while (true) {
    const auto dot = key_path.find('.', start);
    const std::string key = key_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) {
      throw ConfigError("config key '" + key_path + "' is missing");
    }
    node = &node->at(key);
    if (dot == std::string::npos) return *node;
    start = dot + 1;
  }
}

std::string ConfigTree::origin(const std::string& key_path) const {
  const auto it = origins_.find(key_path);
  return it == origins_.end() ? "default" : it->second;
}

}  // namespace svmoe
