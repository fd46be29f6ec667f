// Every setting of svmoe, declared once: its key path, type, default, valid range or choices,
// help text, and whether it changes the numbers a stage produces. From this one table come the
// defaults (and so the valid keys), the ranges the parser checks, --print-config, the keys that
// svmoe run's step hashes count, and docs/config.md (svmoe config-reference; checked in CI).
// The rows are written in config/setting_rows.cpp, each bound to the settings struct member that
// holds its value (config/setting_rows.h); the defaults are those members' initialisers.
#pragma once

#include <string>
#include <vector>

#include "svmoe/config/config_tree.h"
#include "svmoe/config/enums.h"

namespace svmoe {

enum class SettingType {
  kString,
  kChoice,   // one of `choices` (an enum of config/enums.h)
  kInteger,  // in [minimum, maximum]
  kNumber,   // in [minimum, maximum]
  kBoolean,
  kPath,            // a string; null or "" is unset
  kStrings,         // a list of strings (one string is a list of one)
  kIntegers,        // a list of integers
  kNumbers,         // a list of numbers
  kRecords,         // a list of small mappings, checked by its section's parser
  kMapping,         // a mapping of free keys (e.g. category names) to values, checked by its section's parser
  kTrainOverrides,  // a stage's own `train` section: every `train` key, null = as in `train`
};

// Where a stage's paths come from when its section is read: the config (a subcommand), or svmoe
// run's layout (the rows marked set_by_run are then left for the pipeline to set).
enum class PathsFrom { kConfig, kRunLayout };

struct SettingSpec {
  std::string key;  // dotted path, e.g. "train.steps"
  SettingType type = SettingType::kString;
  Json default_value;  // null: unset (`required` says whether that is an error)
  std::vector<std::string> choices;
  Json minimum, maximum;
  bool required = false;
  std::string help;          // one line for docs/config.md
  std::string missing_hint;  // a required path: what the error says to give when it is not set
  // false for settings about how or where a stage runs (threads, logging, checkpoint cadence):
  // svmoe run's step hash leaves them out, so changing them never re-runs a step.
  bool affects_numbers = true;
  // An input or output path that svmoe run lays out itself (its identity is the hash of the
  // step that wrote it), or a key it sets per step.
  bool set_by_run = false;
  // false for keys added after experiments were made: svmoe run's step hash counts the key only
  // where it differs from its default, so the steps of an existing experiment directory keep
  // their hashes (and are not re-run) until the key is set.
  bool hashed_at_default = true;

  SettingSpec without_effect_on_numbers() const;
  SettingSpec laid_out_by_run() const;
  SettingSpec hashed_only_away_from_default() const;
};

// A section's heading, what reads it and the prose docs/config.md shows after its table.
struct SectionDoc {
  std::string name;     // the top-level key
  std::string used_by;  // "every subcommand", "`svmoe prepare`, docs/prepare.md", ...
  std::string notes;    // Markdown after the table; may be empty
};

const std::vector<SettingSpec>& setting_table();
const std::vector<SectionDoc>& section_docs();
// The row for `key` (a stage's own STAGE.train.KEY: the row of train.KEY); a key the table
// does not declare is a bug (std::logic_error).
const SettingSpec& setting_spec(const std::string& key);

// Keys that were renamed, {old: new}: an old key in a config file is an error naming the new one.
const std::vector<std::pair<std::string, std::string>>& renamed_settings();

// The keys of the `train` section (each stage's own `train` overrides them).
std::vector<std::string> train_keys();

// The defaults of every section as one tree: the schema of valid keys.
Json default_config();

// docs/config.md, written from the table.
std::string config_reference_markdown();

}  // namespace svmoe
