// The setting rows, each bound to the member of its settings struct that holds the value.
//
// A row (config/setting_table.h's SettingSpec: key, type, range or choices, help, flags) plus
// where its value lives gives everything else: the default is the member's initialiser, the
// parser reads the row's key into the member with the row's checks, and the table that
// --print-config, docs/config.md and svmoe run's step hashes use is the rows' specs in order.
// A section's parser (config/settings.cpp) is then read_settings<S>() plus its cross-field rules.
//
// A row without a binding (`read` empty) is one its section's parser reads itself: records
// (eval.models), a mapping whose range depends on another key (prepare.subdomain_of), and a
// stage's own `train` section (read by parse_train_settings).
#pragma once

#include <algorithm>
#include <functional>
#include <type_traits>
#include <vector>

#include "svmoe/config/setting_reader.h"
#include "svmoe/config/settings.h"

namespace svmoe {

template <typename Settings>
struct BoundSetting {
  SettingSpec spec;
  std::function<void(const SettingReader&, Settings&)> read;  // empty: read by the section's parser
  // The member's value as the config would write it (the default is this of a default struct).
  std::function<Json(const Settings&)> value;

  BoundSetting without_effect_on_numbers() const { return with_spec(spec.without_effect_on_numbers()); }
  BoundSetting laid_out_by_run() const { return with_spec(spec.laid_out_by_run()); }
  BoundSetting hashed_only_away_from_default() const { return with_spec(spec.hashed_only_away_from_default()); }
  // The hint of the error when a required path is not set.
  BoundSetting if_missing(std::string hint) const {
    SettingSpec copy = spec;
    copy.missing_hint = std::move(hint);
    return with_spec(std::move(copy));
  }

 private:
  BoundSetting with_spec(SettingSpec new_spec) const {
    BoundSetting copy = *this;
    copy.spec = std::move(new_spec);
    return copy;
  }
};

template <typename Settings>
using BoundSettings = std::vector<BoundSetting<Settings>>;

// The rows of one settings struct, in docs order (config/setting_rows.cpp defines one for each).
template <typename Settings>
const BoundSettings<Settings>& bound_settings();
template <>
const BoundSettings<RuntimeSettings>& bound_settings<RuntimeSettings>();
template <>
const BoundSettings<ForwardSettings>& bound_settings<ForwardSettings>();
template <>
const BoundSettings<GenerateSettings>& bound_settings<GenerateSettings>();
template <>
const BoundSettings<ServeSettings>& bound_settings<ServeSettings>();
template <>
const BoundSettings<PrepareSettings>& bound_settings<PrepareSettings>();
template <>
const BoundSettings<MergeSettings>& bound_settings<MergeSettings>();
template <>
const BoundSettings<TrainSettings>& bound_settings<TrainSettings>();
template <>
const BoundSettings<TrainExpertsSettings>& bound_settings<TrainExpertsSettings>();
template <>
const BoundSettings<FinetuneSettings>& bound_settings<FinetuneSettings>();
template <>
const BoundSettings<TrainRouterSettings>& bound_settings<TrainRouterSettings>();
template <>
const BoundSettings<EvalSettings>& bound_settings<EvalSettings>();
template <>
const BoundSettings<ReportSettings>& bound_settings<ReportSettings>();
template <>
const BoundSettings<RunSettings>& bound_settings<RunSettings>();

// Every settings struct that has rows, in docs order, and a visit of each:
// for_each_settings_struct([](auto* tag) { using S = std::remove_pointer_t<decltype(tag)>; ... }).
template <typename... Settings>
struct SettingsStructs {};
using EverySettingsStruct =
    SettingsStructs<RuntimeSettings, ForwardSettings, GenerateSettings, ServeSettings, PrepareSettings, MergeSettings,
                    TrainSettings, TrainExpertsSettings, FinetuneSettings, TrainRouterSettings, EvalSettings,
                    ReportSettings, RunSettings>;
template <typename Visit, typename... Settings>
void for_each_settings_struct(Visit&& visit, SettingsStructs<Settings...>) {
  (visit(static_cast<Settings*>(nullptr)), ...);
}
template <typename Visit>
void for_each_settings_struct(Visit&& visit) {
  for_each_settings_struct(visit, EverySettingsStruct{});
}

// Every row of every section, in docs order: what setting_table() holds.
std::vector<SettingSpec> every_setting_row();

// A default struct with every bound row's value read from the config (checked by its row). With
// PathsFrom::kRunLayout the rows svmoe run lays out are not read: they keep their defaults, for
// the pipeline to set (stages/pipeline.cpp).
template <typename Settings>
Settings read_settings(const SettingReader& read, PathsFrom paths = PathsFrom::kConfig) {
  Settings settings;
  for (const auto& row : bound_settings<Settings>()) {
    if (paths == PathsFrom::kRunLayout && row.spec.set_by_run) continue;
    if (row.read) row.read(read, settings);
  }
  return settings;
}

// The keys of `settings`' rows that the stage ignores for these values (it computes the same
// with any value of them): the merge parameters its method does not read (config/merge_method.h),
// the load-balancing parameters of a fine-tune without LB, the BTM weighting without BTM experts.
std::vector<std::string> unread_setting_keys(const MergeSettings& settings);
std::vector<std::string> unread_setting_keys(const FinetuneSettings& settings);
std::vector<std::string> unread_setting_keys(const EvalSettings& settings);
template <typename Settings>
std::vector<std::string> unread_setting_keys(const Settings&) {
  return {};
}

// The settings a step's result depends on, {key: value}, for svmoe run's step hash
// (stages/pipeline.cpp): every row of `used` that changes numbers and that the stage reads,
// less the rows svmoe run lays out (an input's identity is its step's hash) and a stage's own
// `train` section (hashed resolved, as TrainSettings). A row that is hashed only away from its
// default is left out at its default.
//
// Each value is shown as the config wrote it (`written(key)`) where the step uses the configured
// value (`configured`), and as the step's own typed value where svmoe run set another: so a
// hash is what it was when steps were hashed from the config's text (`alpha: 1` stays 1, not
// 1.0; a corpus of one path stays a string), and finished steps stay done (docs/pipeline.md).
template <typename Settings>
Json hashed_settings(const Settings& used, const Settings& configured,
                     const std::function<Json(const std::string& key)>& written) {
  Json out = Json::object();
  const std::vector<std::string> unread = unread_setting_keys(used);
  for (const auto& row : bound_settings<Settings>()) {
    const SettingSpec& spec = row.spec;
    if (!spec.affects_numbers || spec.set_by_run || spec.type == SettingType::kTrainOverrides) continue;
    if (std::find(unread.begin(), unread.end(), spec.key) != unread.end()) continue;
    const Json value = row.value(used);
    const Json hashed = value == row.value(configured) ? written(spec.key) : value;
    if (!spec.hashed_at_default && hashed == spec.default_value) continue;
    out[spec.key] = hashed;
  }
  return out;
}

// hashed_settings of the `train` section as parse_train_settings(config, stage) resolves it (a
// stage's own keys in place of `train`'s), each as written: {"train.steps": 10, ...}.
Json hashed_train_settings(const ConfigTree& config, const std::string& stage);

}  // namespace svmoe
