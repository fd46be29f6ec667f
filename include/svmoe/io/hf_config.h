// Hugging Face config.json <-> ModelConfig for Llama and Mixtral. Features svmoe does not
// implement (rope scaling, sliding windows, other activations, ...) are errors, not ignored.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "svmoe/model/model_config.h"

namespace svmoe {

// `source` names the file in errors.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);
ModelConfig read_model_config(const std::filesystem::path& config_json);

// config.json for `config`. Fields of `base` (the config this model was loaded with) that
// svmoe does not model are kept, so a load/save round trip loses nothing.
nlohmann::json model_config_to_json(const ModelConfig& config, const nlohmann::json& base = nlohmann::json::object());

}  // namespace svmoe
