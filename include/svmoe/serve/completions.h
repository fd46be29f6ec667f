// The OpenAI completions protocol as svmoe serve speaks it (docs/serving.md): a request's JSON
// checked field by field into a CompletionRequest, and the JSON of responses, stream chunks and
// errors. No HTTP and no model here: serve/server.cpp moves the bytes, serve/scheduler.h runs the
// model.
//   request   {"model", "prompt": string | [string] | [id] | [[id]], "max_tokens", "temperature",
//              "top_p", "n", "stop", "seed", "logprobs": k, "echo", "stream", "stream_options",
//              svmoe's "top_k", "repetition_penalty", "svmoe_routing"}
//   response  {"id", "object": "text_completion", "created", "model",
//              "choices": [{"index", "text", "logprobs": {"tokens", "token_logprobs",
//                           "top_logprobs", "text_offset"} | null, "finish_reason",
//                           "svmoe_routing"?}],
//              "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
// A choice's index is prompt_index * n + its number among the prompt's n.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/eval/generation.h"
#include "svmoe/text/tokenizer.h"

namespace svmoe {

// A request the server refuses: the HTTP status and OpenAI's error fields.
class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(int status, const std::string& message, std::string param = {},
                std::string type = "invalid_request_error", std::string code = {});
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, type_, code_;
};

// {"error": {"message", "type", "param", "code"}}, OpenAI's error body.
nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = {},
                          const std::string& code = {});
nlohmann::json error_body(const ProtocolError& error);

// What a request may ask for (ServeSettings, with the model's numbers filled in).
struct ServeLimits {
  std::string model_name;           // the id requests must name (when they name one)
  std::int64_t vocab_size = 0;      // token ids must be below it
  std::int64_t context_length = 0;  // prompt + max_tokens at most (0: no limit)
  std::int64_t max_prompt_tokens = 0;
  std::int64_t max_tokens = 2048;
  std::int64_t default_max_tokens = 16;
  std::int64_t max_logprobs = 20;
  std::int64_t max_n = 16;
  std::int64_t max_prompts = 1024;  // prompts in one request
  std::int64_t max_stops = 4;       // OpenAI's limit
};

struct CompletionPrompt {
  std::vector<std::int32_t> ids;  // as the model reads it (a text prompt encoded with BOS)
  std::string text;               // as given, or the ids decoded
};

struct CompletionRequest {
  std::string model;
  std::vector<CompletionPrompt> prompts;
  std::int64_t max_tokens = 16;  // 0 only with echo: score the prompt, generate nothing
  std::int64_t n = 1;
  double temperature = 1.0;  // OpenAI's defaults
  double top_p = 1.0;
  std::int64_t top_k = 0;
  double repetition_penalty = 1.0;
  std::vector<std::string> stop;
  std::optional<std::uint64_t> seed;
  std::int64_t logprobs = -1;  // -1: none
  bool echo = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool routing = false;        // svmoe_routing: each token's experts per router

  std::size_t sequences() const { return prompts.size() * static_cast<std::size_t>(n); }
};

// Parses and checks a /v1/completions body. Every refusal is a ProtocolError (400, or 404 for
// another model's name) naming the field: malformed JSON, unknown fields, wrong types, values out
// of range, empty or over-long prompts, ids out of the vocabulary, options svmoe does not offer.
CompletionRequest parse_completion_request(const std::string& body, const ServeLimits& limits,
                                           const Tokenizer& tokenizer);

// One finished sequence, what its choice in the response is made of.
struct ChoiceResult {
  GeneratedText generated;
  std::vector<TokenLogprob> prompt_logprobs;  // echo with logprobs: ids[1..] of the prompt
  // svmoe_routing: [token][router], the prompt's tokens first when echoing.
  std::vector<std::vector<ExpertChoice>> routing;
};

// The "logprobs" object of ids[first..]: their texts, `entries` one per token (null for a
// prompt's first token, which has nothing before it), top alternatives, text offsets.
nlohmann::json logprobs_json(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids, std::size_t first,
                             const std::vector<const TokenLogprob*>& entries);

// "svmoe_routing" of ids[first..]: {"routers": [...], "tokens": [{"token", "text",
// "experts": [[...] per router], "weights": [[...] per router]}]}.
nlohmann::json routing_json(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids, std::size_t first,
                            const std::vector<std::vector<ExpertChoice>>& routing,
                            const std::vector<std::string>& routers);

// The whole choice of a non-streamed response.
nlohmann::json choice_json(const CompletionRequest& request, std::size_t index, const ChoiceResult& result,
                           const Tokenizer& tokenizer, const std::vector<std::string>& routers);

// The response's frame: id, object, created, model, and the given choices and usage (usage null:
// left out).
nlohmann::json completion_json(const std::string& id, std::int64_t created, const std::string& model,
                               nlohmann::json choices, const nlohmann::json& usage);
nlohmann::json usage_json(std::int64_t prompt_tokens, std::int64_t completion_tokens);

// Streaming: how many bytes of a choice's text may be sent now. All of it once finished; before,
// not a trailing incomplete UTF-8 character (or U+FFFD, a byte the next token may complete), nor
// the last `hold_back` bytes (the longest stop string less one: they may yet turn out to begin a
// stop string, and the text is cut before it).
std::size_t sendable_text_bytes(const std::string& text, bool finished, std::size_t hold_back);

// "data: JSON\n\n", one server-sent event (invalid UTF-8 in the text replaced).
std::string server_sent_event(const nlohmann::json& data);

// JSON text of any value, with invalid UTF-8 (a token that is part of a character) replaced.
std::string json_text(const nlohmann::json& value);

// /tokenize {"prompt": string, "add_special_tokens": bool} -> {"tokens", "count", "max_model_len"};
// /detokenize {"tokens": [id]} -> {"prompt": text}. ProtocolError for a bad body.
nlohmann::json tokenize_response(const std::string& body, const ServeLimits& limits, const Tokenizer& tokenizer);
nlohmann::json detokenize_response(const std::string& body, const ServeLimits& limits, const Tokenizer& tokenizer);

}  // namespace svmoe
