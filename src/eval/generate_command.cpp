// svmoe generate: prompts from the flags and a file, generated in batches of generate.batch_size
// (eval/generation.h), each completion printed as it is done and written to a JSONL file at the
// end (atomically: an interrupted run leaves no half file). Also the model loading that svmoe
// serve shares.
#include "svmoe/eval/generate_command.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include "svmoe/eval/generation.h"
#include "svmoe/io/hf_config.h"
#include "svmoe/io/inference_model.h"
#include "svmoe/model/device.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {

// The --prompt texts, then the file's: a .jsonl file's "prompt" strings (an error names the line
// without one), any other file's non-empty lines.
std::vector<std::string> read_prompts(const GenerateSettings& settings) {
  std::vector<std::string> prompts = settings.prompts;
  if (settings.prompts_file.empty()) return prompts;
  const auto& file = settings.prompts_file;
  if (!std::filesystem::is_regular_file(file)) {
    throw IoError("generate.prompts_file '" + file.string() + "' does not exist", "check the path");
  }
  const bool jsonl = ends_with(file.filename().string(), ".jsonl");
  LineReader reader(file);
  std::string line;
  while (reader.next(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!jsonl) {
      prompts.push_back(line);
      continue;
    }
    const auto where = "'" + file.string() + "' line " + std::to_string(reader.line_number());
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(where + " is not JSON (" + e.what() + ")", "write one JSON object a line");
    }
    if (!record.is_object() || !record.contains("prompt") || !record["prompt"].is_string()) {
      throw FormatError(where + " has no \"prompt\" string", "write {\"prompt\": \"...\"} on each line");
    }
    prompts.push_back(record["prompt"].get<std::string>());
  }
  return prompts;
}

// The model in the asked dtype ("auto": its config.json's), on runtime.device, and the tokenizer
// beside it; a tokenizer with more ids than the embedding has rows is refused here, before an
// out-of-range id could reach the model.
GenerationModel load_generation_model(const std::filesystem::path& directory, ForwardDtype dtype,
                                      const RuntimeSettings& runtime) {
  GenerationModel loaded;
  const torch::Device device = resolve_device(runtime.device);
  loaded.device_name = device.str();
  loaded.config = read_model_config(directory);
  loaded.dtype_name = dtype == ForwardDtype::kCheckpoint ? loaded.config.dtype : enum_name(dtype);
  loaded.model =
      load_model_for_inference(directory, {device, parse_compute_dtype(loaded.dtype_name), runtime.expert_path});
  loaded.tokenizer = load_tokenizer(tokenizer_source(directory, directory));
  if (loaded.tokenizer->vocab_size() > loaded.config.vocab_size) {
    throw FormatError("the tokenizer in '" + directory.string() + "' has " +
                          std::to_string(loaded.tokenizer->vocab_size()) + " ids, the model only " +
                          std::to_string(loaded.config.vocab_size),
                      "is the tokenizer beside the checkpoint the one it was trained with?");
  }
  return loaded;
}

namespace {

// "3 .61  1 .39" for one router's choice of one token.
std::string describe_choice(const ExpertChoice& choice) {
  std::string text;
  for (std::size_t i = 0; i < choice.experts.size(); ++i) {
    text += fmt::format("{}{} {:.2f}", i ? "  " : "", choice.experts[i], choice.weights[i]);
  }
  return text;
}

// The JSONL record's "routing": for each generated token, each router's experts and weights.
nlohmann::json routing_json(const std::vector<std::int32_t>& tokens,
                            const std::vector<std::vector<ExpertChoice>>& routing,
                            const std::vector<std::string>& routers, const Tokenizer& tokenizer) {
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t t = 0; t < tokens.size() && t < routing.size(); ++t) {
    nlohmann::json choices = nlohmann::json::object();
    for (std::size_t r = 0; r < routers.size(); ++r) {
      choices[routers[r]] = {{"experts", routing[t][r].experts}, {"weights", routing[t][r].weights}};
    }
    out.push_back({{"token", tokens[t]}, {"piece", tokenizer.piece(tokens[t])}, {"routing", choices}});
  }
  return out;
}

void print_routing(const std::vector<std::int32_t>& tokens, const std::vector<std::vector<ExpertChoice>>& routing,
                   const std::vector<std::string>& routers, const Tokenizer& tokenizer) {
  for (std::size_t t = 0; t < tokens.size() && t < routing.size(); ++t) {
    std::string line = fmt::format("    {:<16}", nlohmann::json(tokenizer.piece(tokens[t])).dump());
    for (std::size_t r = 0; r < routers.size(); ++r) {
      line += fmt::format("{}{}: {}", r ? " | " : " ", routers[r], describe_choice(routing[t][r]));
    }
    std::cout << line << "\n";
  }
}

}  // namespace

void run_generate(const GenerateSettings& settings, const RuntimeSettings& runtime) {
  const std::vector<std::string> prompts = read_prompts(settings);
  if (prompts.empty()) {
    throw ConfigError("generate.prompts_file '" + settings.prompts_file.string() + "' holds no prompt",
                      "write one prompt a line, or give --prompt TEXT");
  }
  GenerationModel loaded = load_generation_model(settings.model, settings.dtype, runtime);
  const ModelConfig& config = loaded.config;
  CausalLM& model = loaded.model;
  const auto& tokenizer = loaded.tokenizer;
  spdlog::info("generate: {} ({}, {} layers) on {} in {}, {} prompt(s), batches of {}, KV cache {}",
               settings.model.string(), config.model_type(), config.num_hidden_layers, loaded.device_name,
               loaded.dtype_name, prompts.size(), settings.batch_size, settings.kv_cache ? "on" : "off");

  GenerationOptions options;
  options.kv_cache = settings.kv_cache;
  options.end_of_text = end_of_text_ids(config, *tokenizer);
  const auto routers = router_names(config);
  const bool routing = settings.routing && config.is_moe();
  if (settings.routing && !config.is_moe()) spdlog::warn("generate.routing: a dense model has no router to report");
  GenerationTimings timings;
  std::string jsonl;
  for (std::size_t begin = 0; begin < prompts.size(); begin += static_cast<std::size_t>(settings.batch_size)) {
    const std::size_t end = std::min(prompts.size(), begin + static_cast<std::size_t>(settings.batch_size));
    std::vector<GenerationRequest> requests;
    for (std::size_t i = begin; i < end; ++i) {
      GenerationRequest request;
      request.prompt = encode_prompt(*tokenizer, prompts[i]);
      if (request.prompt.empty()) {
        throw ConfigError("prompt " + std::to_string(i + 1) + " encodes to no token", "give a non-empty prompt");
      }
      const auto length = static_cast<std::int64_t>(request.prompt.size());
      if (config.max_position_embeddings > 0 && length + settings.max_new_tokens > config.max_position_embeddings) {
        throw ConfigError("prompt " + std::to_string(i + 1) + " has " + std::to_string(length) +
                              " tokens; with generate.max_new_tokens " + std::to_string(settings.max_new_tokens) +
                              " that passes the model's max_position_embeddings " +
                              std::to_string(config.max_position_embeddings),
                          "shorten the prompt or lower --max-new-tokens");
      }
      request.max_new_tokens = settings.max_new_tokens;
      request.stop = settings.stop;
      // Prompt i samples with seed + i: its text does not depend on the batch it is in.
      request.sampling = {settings.temperature, settings.top_k, settings.top_p, settings.repetition_penalty,
                          runtime.seed + i};
      requests.push_back(std::move(request));
    }
    const auto results = generate(*model, tokenizer.get(), requests, options, &timings);
    for (std::size_t j = 0; j < results.size(); ++j) {
      const std::size_t i = begin + j;
      const auto& result = results[j];
      std::cout << fmt::format("[{}/{}] prompt ({} tokens): {}\n", i + 1, prompts.size(), requests[j].prompt.size(),
                               prompts[i])
                << fmt::format("[{}/{}] completion ({} tokens, {}): {}\n", i + 1, prompts.size(), result.tokens.size(),
                               finish_reason_name(result.finish), result.text);
      nlohmann::json record = {{"index", i},
                               {"prompt", prompts[i]},
                               {"completion", result.text},
                               {"prompt_tokens", requests[j].prompt.size()},
                               {"completion_tokens", result.tokens.size()},
                               {"finish_reason", finish_reason_name(result.finish)}};
      // The routing is one more forward pass over prompt + completion (the cache holds no routing).
      if (routing) {
        std::vector<std::int32_t> ids = requests[j].prompt;
        ids.insert(ids.end(), result.tokens.begin(), result.tokens.end());
        const auto choices = routing_of_tokens(*model, ids, requests[j].prompt.size());
        print_routing(result.tokens, choices, routers, *tokenizer);
        record["routing"] = routing_json(result.tokens, choices, routers, *tokenizer);
      }
      std::cout.flush();
      jsonl += record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  const auto rate = [](std::int64_t tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; };
  spdlog::info("prompt: {} tokens in {:.2f} s ({:.1f} tokens/s); generation: {} tokens in {:.2f} s ({:.1f} tokens/s)",
               timings.prompt_tokens, timings.prompt_seconds, rate(timings.prompt_tokens, timings.prompt_seconds),
               timings.generated_tokens, timings.generation_seconds,
               rate(timings.generated_tokens, timings.generation_seconds));
  if (!settings.output.empty()) {
    write_file_atomically(settings.output, jsonl);
    spdlog::info("wrote {}", settings.output.string());
  }
}

}  // namespace svmoe
