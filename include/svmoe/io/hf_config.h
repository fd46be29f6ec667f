// Hugging Face config.json <-> ModelConfig for Llama and Mixtral. Features svmoe does not
// implement (rope scaling, sliding windows, other activations, ...) are errors, not ignored.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "svmoe/model/model_config.h"

namespace svmoe {

// A model directory's config.json: the one place its name is spelt.
std::filesystem::path model_config_file(const std::filesystem::path& model_directory);

// `source` names the file in errors.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);
// The config.json of a model directory, parsed; errors name the file.
ModelConfig read_model_config(const std::filesystem::path& model_directory);
// The same file as JSON, every field kept (for what svmoe does not model).
nlohmann::json read_model_config_json(const std::filesystem::path& model_directory);

// config.json for `config`. Fields of `base` (the config this model was loaded with) that
// svmoe does not model are kept, so a load/save round trip loses nothing.
nlohmann::json model_config_to_json(const ModelConfig& config, const nlohmann::json& base = nlohmann::json::object());

}  // namespace svmoe
