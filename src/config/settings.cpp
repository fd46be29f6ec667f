#include "svmoe/config/settings.h"

#include <limits>

#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

Json default_config() {
  const RuntimeSettings runtime;
  const ForwardSettings forward;
  return Json{
      {"runtime",
       {{"device", runtime.device},
        {"log_level", runtime.log_level},
        {"threads", runtime.threads},
        {"seed", runtime.seed}}},
      {"forward",
       {{"model", nullptr},
        {"input", nullptr},
        {"output", nullptr},
        {"dtype", forward.dtype},
        {"compare", nullptr},
        {"atol", forward.atol}}},
  };
}

RuntimeSettings parse_runtime_settings(const ConfigTree& config) {
  const SettingReader read(config);
  RuntimeSettings s;
  s.device = read.string("runtime.device");
  if (s.device != "auto" && s.device != "cpu" && !starts_with(s.device, "cuda")) {
    throw ConfigError(
        "config key 'runtime.device' (from " + config.origin("runtime.device") + ") is '" + s.device + "'",
        "use auto, cpu, cuda or cuda:N");
  }
  s.log_level = read.choice("runtime.log_level", {"trace", "debug", "info", "warn", "error", "off"});
  s.threads = static_cast<int>(read.integer("runtime.threads", 0, 4096));
  s.seed = static_cast<std::uint64_t>(read.integer("runtime.seed", 0, std::numeric_limits<std::int64_t>::max()));
  return s;
}

ForwardSettings parse_forward_settings(const ConfigTree& config) {
  const SettingReader read(config);
  ForwardSettings s;
  s.model = read.path("forward.model", true, "give --model DIR (a Hugging Face checkpoint directory)");
  s.input = read.path("forward.input", true, "give --input IN.safetensors holding int64 input_ids [B, T]");
  s.output = read.path("forward.output", false);
  s.dtype = read.choice("forward.dtype", {"float32", "bfloat16", "float16", "auto"});
  s.compare = read.path("forward.compare", false);
  s.atol = read.number("forward.atol", 0.0, std::numeric_limits<double>::infinity());
  if (s.output.empty() && s.compare.empty()) {
    throw ConfigError("svmoe forward has nothing to do: neither forward.output nor forward.compare is set",
                      "give --output OUT.safetensors, --compare EXPECTED.safetensors, or both");
  }
  return s;
}

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

std::string SettingReader::choice(const std::string& key_path, const std::vector<std::string>& options) const {
  const Json& value = config_.at(key_path);
  if (value.is_string()) {
    for (const auto& option : options) {
      if (value.get<std::string>() == option) return option;
    }
    const std::string suggestion = nearest_word(value.get<std::string>(), options);
    if (!suggestion.empty()) fail(key_path, "one of " + join(options, ", "), "did you mean '" + suggestion + "'?");
  }
  fail(key_path, "one of " + join(options, ", "));
}

std::int64_t SettingReader::integer(const std::string& key_path, std::int64_t min, std::int64_t max) const {
  const Json& value = config_.at(key_path);
  if (!value.is_number_integer()) fail(key_path, "an integer");
  const auto result = value.get<std::int64_t>();
  if (result < min || result > max) {
    fail(key_path, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return result;
}

double SettingReader::number(const std::string& key_path, double min, double max) const {
  const Json& value = config_.at(key_path);
  if (!value.is_number()) fail(key_path, "a number");
  const auto result = value.get<double>();
  if (!(result >= min && result <= max)) {
    fail(key_path, "a number in [" + Json(min).dump() + ", " + Json(max).dump() + "]");
  }
  return result;
}

bool SettingReader::boolean(const std::string& key_path) const {
  const Json& value = config_.at(key_path);
  if (!value.is_boolean()) fail(key_path, "true or false");
  return value.get<bool>();
}

std::filesystem::path SettingReader::path(const std::string& key_path, bool required, const std::string& hint) const {
  const Json& value = config_.at(key_path);
  if (value.is_null() || (value.is_string() && value.get<std::string>().empty())) {
    if (required) throw ConfigError("config key '" + key_path + "' is required but not set", hint);
    return {};
  }
  if (!value.is_string()) fail(key_path, "a path (a string)", hint);
  return value.get<std::string>();
}

}  // namespace svmoe
