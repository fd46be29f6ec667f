// The config tree: YAML or JSON files and `--set key.path=value` overrides, merged in order
// (defaults, files, overrides) into one JSON tree that remembers where each value came from.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace svmoe {

using Json = nlohmann::json;

class ConfigTree {
 public:
  // `defaults` names every valid key: a key absent from it is an error (with a suggestion).
  explicit ConfigTree(Json defaults);

  // Merges a YAML (.yaml/.yml) or JSON (.json) file into the tree.
  void merge_file(const std::filesystem::path& path);
  // "a.b.c=value"; the value is read as a YAML scalar or flow collection ("3", "true", "[1,2]").
  void apply_override(const std::string& assignment, const std::string& origin = "--set");
  // Sets one key to an already typed value (what a dedicated command-line flag gives).
  void set(const std::string& key_path, Json value, const std::string& origin);
  void merge(const Json& values, const std::string& origin);

  const Json& root() const { return tree_; }
  // The value at a dotted key path; throws ConfigError if the path is not in the tree.
  const Json& at(const std::string& key_path) const;
  // Where the value at `key_path` came from: "default", a file name or "--set".
  std::string origin(const std::string& key_path) const;

  // The resolved tree as YAML-ish JSON text (what --print-config prints).
  std::string dump() const { return tree_.dump(2); }

 private:
  void merge_into(Json& target, const Json& source, const std::string& prefix, const Json& schema,
                  const std::string& origin);

  Json schema_;
  Json tree_;
  std::map<std::string, std::string> origins_;
};

// Reads a YAML or JSON file into JSON. Errors name the file and the line.
Json read_config_file(const std::filesystem::path& path);

// Converts a YAML text to JSON (scalars typed as YAML 1.2 core schema; quoted stay strings).
Json yaml_to_json(const std::string& text, const std::string& source_name);

}  // namespace svmoe
