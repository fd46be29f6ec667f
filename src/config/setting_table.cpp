#include "svmoe/config/setting_table.h"

#include <algorithm>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include "svmoe/config/setting_rows.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

constexpr double kUnbounded = std::numeric_limits<double>::max();

// Each section's heading in docs/config.md: its name, who reads it, and the prose that follows
// its table (flags, and what a single row cannot say). The rows themselves are in
// config/setting_rows.cpp; this is only their documentation's frame.
std::vector<SectionDoc> make_section_docs() {
  return {
      {"runtime", "every subcommand", ""},
      {"forward", "`svmoe forward`", "At least one of `output` and `compare` must be set."},
      {"generate", "`svmoe generate`, docs/generation.md",
       "Flags: `--model`, `--prompt` (repeatable), `--prompts-file`, `--output`, `--max-new-tokens`, "
       "`--temperature`, `--top-k`, `--top-p`, `--repetition-penalty`, `--stop` (repeatable), `--batch-size`, "
       "`--no-kv-cache`, `--routing`, `--dtype`. Sampling draws with `runtime.seed` + the prompt's index, so a "
       "prompt's text does not depend on the batch it is in."},
      {"serve", "`svmoe serve`, docs/serving.md",
       "Flags: `--model`, `--model-name`, `--host`, `--port`, `--api-key`, `--max-batch-size`, `--max-queued`, "
       "`--max-request-bytes`, `--max-prompt-tokens`, `--max-tokens`, `--max-logprobs`, `--http-threads`, "
       "`--no-kv-cache`, `--dtype`. A request without a `seed` samples with one the server draws; with a seed, "
       "sequence i of the request (prompt p, choice c: i = p n + c) samples with seed + i."},
      {"prepare", "`svmoe prepare`, docs/prepare.md",
       "Flags of `svmoe prepare`: `--corpus`, `--output`, `--tokenizer`, `--subdomains`."},
      {"merge", "`svmoe merge`",
       "Flags of `svmoe merge`: `--method`, `--experts`, `--base-model`, `--num-experts`, `--drop-ratio`, "
       "`--shared-expert`, `--output`, `--top-k`. docs/upcycling.md describes the methods and where svmoe follows or "
       "departs from their published "
       "code. The routers are seeded with `runtime.seed` "
       "(layer l's from seed + 1000003 l, so a router does not depend on write order). The MoE's config.json gets "
       "transformers' `router_aux_loss_coef` default (0.001); `svmoe finetune` with `load_balancing.method: switch` "
       "replaces it with `finetune.load_balancing.alpha`, the coefficient it trained with."},
      {"train", "every training stage",
       "`micro_batch` is per process: with data parallelism a step reads `micro_batch x grad_accum x world size` "
       "windows.\n\n"
       "**A stage's own training settings.** `train_experts`, `train_router`, `finetune` and `run.pretrain_base` "
       "each have a `train` subsection with the same keys, all null by default; a key set there replaces the "
       "`train` section's for that stage only, so one experiment file gives each stage its own steps and learning "
       "rate (`train_router: {train: {steps: 100, learning_rate: 1.0e-2}}`). Errors name the stage's key. Each "
       "stage's `--steps` flag sets `STAGE.train.steps`."},
      {"train_experts", "`svmoe train-experts`",
       "Flags: `--base-model`, `--dataset`, `--output`, `--expert N`, `--steps`."},
      {"finetune", "`svmoe finetune`", "Flags: `--model`, `--dataset`, `--output`, `--steps`."},
      {"train_router", "`svmoe train-router`", "Flags: `--model`, `--dataset`, `--output`, `--steps`."},
      {"eval", "`svmoe eval`, docs/eval.md",
       "Flags: `--dataset`, `--output`, `--split` (repeatable), `--max-documents`."},
      {"report", "`svmoe report`, docs/eval.md", "Flags: `--output`, `--text`."},
      {"run", "`svmoe run`, docs/pipeline.md", ""},
  };
}

std::string markdown_cell(std::string text) {
  std::string out;
  for (const char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// A string that Markdown would lose (empty, a leading space, a newline) is shown as JSON.
std::string literal(const Json& value) {
  if (!value.is_string()) return value.dump();
  const std::string& text = value.get<std::string>();
  const bool plain = !text.empty() && text.front() != ' ' && text.find('\n') == std::string::npos;
  return plain ? text : value.dump();
}

std::string default_cell(const SettingSpec& s) {
  if (s.type == SettingType::kTrainOverrides) return "nulls";
  if (s.default_value.is_null()) return s.required ? "required" : "none";
  if (!s.default_value.is_array()) return "`" + markdown_cell(literal(s.default_value)) + "`";
  std::vector<std::string> items;
  for (const auto& item : s.default_value) items.push_back(literal(item));
  return "`[" + markdown_cell(join(items, ", ")) + "]`";
}

// A range's bound as docs/config.md writes it: large powers of two as 2^k, so that "[1, 2^40]"
// reads as the "no practical limit" it is.
std::string bound_text(const Json& bound) {
  if (bound.is_number_integer()) {
    const std::int64_t v = bound.get<std::int64_t>();
    if (v == std::numeric_limits<std::int64_t>::max()) return "2^63-1";
    if (v >= (std::int64_t{1} << 20) && (v & (v - 1)) == 0) {
      int power = 0;
      while ((std::int64_t{1} << power) != v) ++power;
      return "2^" + std::to_string(power);
    }
    return std::to_string(v);
  }
  return bound.dump();
}

// The "type" column: the row's type with its range or choices, as a reader checks it.
std::string type_cell(const SettingSpec& s) {
  const auto quoted = [](const std::vector<std::string>& words) {
    std::vector<std::string> out;
    for (const auto& w : words) out.push_back("`" + w + "`");
    return join(out, ", ");
  };
  switch (s.type) {
    case SettingType::kString:
      return "string";
    case SettingType::kChoice:
      return "one of " + quoted(s.choices);
    case SettingType::kInteger:
      return "integer in [" + bound_text(s.minimum) + ", " + bound_text(s.maximum) + "]";
    case SettingType::kNumber:
      if (s.maximum.get<double>() >= kUnbounded) return "number >= " + bound_text(s.minimum);
      return "number in [" + bound_text(s.minimum) + ", " + bound_text(s.maximum) + "]";
    case SettingType::kBoolean:
      return "true/false";
    case SettingType::kPath:
      return "path";
    case SettingType::kStrings:
      return s.choices.empty() ? "list of strings" : "list of " + quoted(s.choices);
    case SettingType::kIntegers:
      return "list of integers";
    case SettingType::kNumbers:
      return "list of numbers";
    case SettingType::kRecords:
      return "list of mappings";
    case SettingType::kMapping:
      return "mapping";
    case SettingType::kTrainOverrides:
      return "section";
  }
  return "?";
}

}  // namespace

SettingSpec SettingSpec::hashed_only_away_from_default() const {
  SettingSpec copy = *this;
  copy.hashed_at_default = false;
  return copy;
}

SettingSpec SettingSpec::without_effect_on_numbers() const {
  SettingSpec copy = *this;
  copy.affects_numbers = false;
  return copy;
}

SettingSpec SettingSpec::laid_out_by_run() const {
  SettingSpec copy = *this;
  copy.set_by_run = true;
  return copy;
}

// Built once from the rows (every_setting_row, in docs order) and never changed: the table is
// what --print-config, docs/config.md, the readers' checks and the step hashes share.
const std::vector<SettingSpec>& setting_table() {
  static const std::vector<SettingSpec> table = every_setting_row();
  return table;
}

const std::vector<SectionDoc>& section_docs() {
  static const std::vector<SectionDoc> docs = make_section_docs();
  return docs;
}

const SettingSpec& setting_spec(const std::string& key) {
  // A stage's own `train` key (STAGE.train.KEY) is the row of train.KEY.
  const auto own = key.find(".train.");
  if (own != std::string::npos && !starts_with(key, "train.")) return setting_spec(key.substr(own + 1));
  static const std::map<std::string, const SettingSpec*> by_key = [] {
    std::map<std::string, const SettingSpec*> map;
    for (const auto& spec : setting_table()) map[spec.key] = &spec;
    return map;
  }();
  const auto it = by_key.find(key);
  if (it == by_key.end()) throw std::logic_error("the setting table has no key '" + key + "'");
  return *it->second;
}

const std::vector<std::pair<std::string, std::string>>& renamed_settings() {
  static const std::vector<std::pair<std::string, std::string>> renamed = {
      {"merge.router_aux_loss_coef", "finetune.load_balancing.alpha"},
  };
  return renamed;
}

std::vector<std::string> train_keys() {
  std::vector<std::string> keys;
  for (const auto& spec : setting_table()) {
    if (starts_with(spec.key, "train.")) keys.push_back(spec.key.substr(6));
  }
  return keys;
}

// The tree of every valid key at its default: a config file is merged onto it, so a key that is
// not here is unknown (config_tree.h suggests the nearest), and every read finds a value. A
// stage's own `train` section holds every train key as null, meaning "as in `train`".
Json default_config() {
  Json stage_train = Json::object();
  for (const auto& key : train_keys()) stage_train[key] = nullptr;
  Json tree = Json::object();
  for (const auto& spec : setting_table()) {
    std::string pointer = "/" + spec.key;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    tree[Json::json_pointer(pointer)] = spec.type == SettingType::kTrainOverrides ? stage_train : spec.default_value;
  }
  return tree;
}

// docs/config.md, byte for byte: SettingTable.DocsConfigMdIsTheTableRendered fails when the committed
// file and this differ, so the docs cannot drift from the rows.
std::string config_reference_markdown() {
  std::ostringstream out;
  out << "# Experiment configs\n\n"
         "<!-- Written by `svmoe config-reference > docs/config.md` from src/config/setting_rows.cpp; a test\n"
         "     fails when this file and the rows differ. Edit the rows, not this file. -->\n\n"
         "One YAML or JSON file per experiment holds every section; each subcommand reads the sections\n"
         "it needs, so the same file serves all stages. Values are resolved in this order, later winning:\n"
         "built-in defaults, `-c FILE` (repeatable), `--set key.path=value` (repeatable, the value read as\n"
         "YAML: `--set runtime.threads=4`, `--set forward.dtype=bfloat16`), then the subcommand's own\n"
         "flags (`--model`, `--device`, ...). `--print-config` prints the result and exits.\n\n"
         "Every key is checked: an unknown key is an error with the nearest valid key as a hint; a bad\n"
         "value is an error naming the key path, where the value came from (file, `--set`, flag),\n"
         "what was found and what was expected. Nothing touches data or a GPU before the whole config\n"
         "has been validated. Every setting is declared once, as a row in `src/config/setting_rows.cpp`\n"
         "(the settings struct member it fills, key, type, range or choices, help, whether it changes a\n"
         "stage's numbers); the defaults are those members' initialisers\n"
         "(`include/svmoe/config/settings.h`), which code reads as typed values (enums for every\n"
         "choice), never as strings.\n\n"
         "A key marked *not hashed* changes how or where a stage runs, not its numbers: `svmoe run`\n"
         "does not run a step again when only such a key changed. A key marked *laid out by run* is set\n"
         "by `svmoe run` itself (docs/pipeline.md).\n";
  std::vector<std::string> laid_out;
  for (const auto& section : section_docs()) {
    out << "\n## `" << section.name << "` (" << section.used_by << ")\n\n";
    out << "| key | type | default | meaning |\n|---|---|---|---|\n";
    for (const auto& spec : setting_table()) {
      if (!starts_with(spec.key, section.name + ".")) continue;
      std::string meaning = markdown_cell(spec.help);
      if (!spec.affects_numbers) meaning += " *(not hashed)*";
      if (spec.set_by_run) {
        meaning += " *(laid out by run)*";
        laid_out.push_back("`" + spec.key + "`");
      }
      out << "| `" << spec.key.substr(section.name.size() + 1) << "` | " << type_cell(spec) << " | "
          << default_cell(spec) << " | " << meaning << " |\n";
    }
    if (!section.notes.empty()) out << "\n" << section.notes << "\n";
  }
  out << "\n`svmoe run` sets these keys itself: " << join(laid_out, ", ")
      << "; and, when no tokenizer is given or trained, `prepare.tokenizer` (the base model's). Flags: `--dir`.\n";
  out << "\nRenamed keys (an old name is an error that names the new one):\n\n";
  for (const auto& [old_key, new_key] : renamed_settings()) out << "- `" << old_key << "` -> `" << new_key << "`\n";
  return out.str();
}

}  // namespace svmoe
