// The completions protocol: requests are read field by field against a table of the fields svmoe
// knows (an unknown field is refused, as OpenAI does, rather than silently ignored), each checked
// for its type and range with the field's name in the error; responses are built from the
// finished sequences (serve/scheduler.h) and the tokenizer.
#include "svmoe/serve/completions.h"

#include <algorithm>
#include <set>

namespace svmoe {

using Json = nlohmann::json;

ProtocolError::ProtocolError(int status, const std::string& message, std::string param, std::string type,
                             std::string code)
    : std::runtime_error(message),
      status_(status),
      param_(std::move(param)),
      type_(std::move(type)),
      code_(std::move(code)) {}

Json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? Json(nullptr) : Json(param)},
            {"code", code.empty() ? Json(nullptr) : Json(code)}}}};
}

Json error_body(const ProtocolError& error) {
  return error_body(error.what(), error.type(), error.param(), error.code());
}

std::string json_text(const Json& value) { return value.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string server_sent_event(const Json& data) { return "data: " + json_text(data) + "\n\n"; }

namespace {

[[noreturn]] void refuse(const std::string& param, const std::string& message) {
  throw ProtocolError(400, message, param);
}

std::string type_name(const Json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

Json parse_body(const std::string& body) {
  Json json;
  try {
    json = Json::parse(body);
  } catch (const Json::parse_error& e) {
    // nlohmann's message names the byte offset and what it found (invalid UTF-8 included).
    refuse("", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!json.is_object()) refuse("", "the request body must be a JSON object, not " + type_name(json));
  return json;
}

// The request's fields, read once each; present() is false for a missing or null field.
class Fields {
 public:
  Fields(const Json& json, const std::set<std::string>& known) : json_(json) {
    for (const auto& [key, value] : json.items()) {
      if (known.count(key) == 0) {
        refuse(key, "unknown field '" + key + "' (svmoe serve reads: " + known_list(known) + ")");
      }
    }
  }
  bool present(const std::string& key) const { return json_.contains(key) && !json_.at(key).is_null(); }
  const Json& at(const std::string& key) const { return json_.at(key); }

  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t min, std::int64_t max,
                       const std::string& why_max = {}) const {
    if (!present(key)) return fallback;
    const Json& v = json_.at(key);
    if (!v.is_number_integer()) refuse(key, "'" + key + "' must be an integer, not " + type_name(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      refuse(key, "'" + key + "' is " + v.dump() + ", above " + std::to_string(max) + why_max);
    }
    const auto x = v.get<std::int64_t>();
    if (x < min) refuse(key, "'" + key + "' is " + std::to_string(x) + ", below " + std::to_string(min));
    if (x > max) refuse(key, "'" + key + "' is " + std::to_string(x) + ", above " + std::to_string(max) + why_max);
    return x;
  }
  double number(const std::string& key, double fallback, double min, double max) const {
    if (!present(key)) return fallback;
    const Json& v = json_.at(key);
    if (!v.is_number()) refuse(key, "'" + key + "' must be a number, not " + type_name(v));
    const auto x = v.get<double>();
    if (!(x >= min && x <= max)) {
      refuse(key,
             "'" + key + "' is " + v.dump() + "; it must be between " + Json(min).dump() + " and " + Json(max).dump());
    }
    return x;
  }
  bool boolean(const std::string& key) const {
    if (!present(key)) return false;
    const Json& v = json_.at(key);
    if (!v.is_boolean()) refuse(key, "'" + key + "' must be true or false, not " + type_name(v));
    return v.get<bool>();
  }
  std::string string(const std::string& key) const {
    if (!present(key)) return {};
    const Json& v = json_.at(key);
    if (!v.is_string()) refuse(key, "'" + key + "' must be a string, not " + type_name(v));
    return v.get<std::string>();
  }

 private:
  static std::string known_list(const std::set<std::string>& known) {
    std::string text;
    for (const auto& key : known) text += (text.empty() ? "" : ", ") + key;
    return text;
  }
  const Json& json_;
};

const std::set<std::string>& completion_fields() {
  static const std::set<std::string> fields = {
      // OpenAI's completions fields
      "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "logprobs",
      "echo", "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user", "seed",
      // svmoe's (as vLLM names the first two)
      "top_k", "repetition_penalty", "svmoe_routing"};
  return fields;
}

void check_model(const Fields& fields, const ServeLimits& limits) {
  const auto model = fields.string("model");
  if (!model.empty() && model != limits.model_name) {
    throw ProtocolError(404, "The model '" + model + "' does not exist; this server serves '" + limits.model_name + "'",
                        "model", "invalid_request_error", "model_not_found");
  }
}

// A token id of the request's field `param` ("prompt", or /detokenize's "tokens"), in the vocabulary.
std::int32_t checked_id(const Json& v, const ServeLimits& limits, const std::string& param, const std::string& where) {
  if (!v.is_number_integer()) refuse(param, where + " must be a token id (an integer), not " + type_name(v));
  if (v.is_number_unsigned() ? v.get<std::uint64_t>() >= static_cast<std::uint64_t>(limits.vocab_size)
                             : (v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= limits.vocab_size)) {
    refuse(param,
           where + " is " + v.dump() + ", outside the vocabulary [0, " + std::to_string(limits.vocab_size) + ")");
  }
  return static_cast<std::int32_t>(v.get<std::int64_t>());
}

CompletionPrompt ids_prompt(const Json& ids, const ServeLimits& limits, const Tokenizer& tokenizer,
                            const std::string& where) {
  if (ids.empty()) refuse("prompt", where + " is an empty list of token ids");
  CompletionPrompt prompt;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    prompt.ids.push_back(checked_id(ids[i], limits, "prompt", where + " token " + std::to_string(i)));
  }
  prompt.text = tokenizer.decode(prompt.ids);
  return prompt;
}

CompletionPrompt text_prompt(const std::string& text, const Tokenizer& tokenizer, const std::string& where) {
  if (text.empty()) refuse("prompt", where + " is empty (give some text, or token ids)");
  CompletionPrompt prompt{encode_prompt(tokenizer, text), text};
  if (prompt.ids.empty()) refuse("prompt", where + " encodes to no token");
  return prompt;
}

// "prompt": a string, a list of strings, a list of ids, or a list of lists of ids.
std::vector<CompletionPrompt> request_prompts(const Fields& fields, const ServeLimits& limits,
                                              const Tokenizer& tokenizer) {
  if (!fields.present("prompt")) refuse("prompt", "'prompt' is missing (a string, a list of strings or token ids)");
  const Json& prompt = fields.at("prompt");
  if (prompt.is_string()) return {text_prompt(prompt.get<std::string>(), tokenizer, "the prompt")};
  if (!prompt.is_array()) {
    refuse("prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of such lists, not " +
                         type_name(prompt));
  }
  if (prompt.empty()) refuse("prompt", "'prompt' is an empty list");
  if (static_cast<std::int64_t>(prompt.size()) > limits.max_prompts && !prompt[0].is_number_integer()) {
    refuse("prompt", "'prompt' holds " + std::to_string(prompt.size()) + " prompts; at most " +
                         std::to_string(limits.max_prompts) + " a request");
  }
  if (prompt[0].is_number_integer()) return {ids_prompt(prompt, limits, tokenizer, "the prompt")};
  std::vector<CompletionPrompt> prompts;
  for (std::size_t i = 0; i < prompt.size(); ++i) {
    const auto where = "prompt " + std::to_string(i);
    if (prompt[i].is_string()) {
      prompts.push_back(text_prompt(prompt[i].get<std::string>(), tokenizer, where));
    } else if (prompt[i].is_array()) {
      prompts.push_back(ids_prompt(prompt[i], limits, tokenizer, where));
    } else {
      refuse("prompt", where + " must be a string or a list of token ids, not " + type_name(prompt[i]));
    }
  }
  return prompts;
}

std::vector<std::string> read_stop(const Fields& fields, const ServeLimits& limits) {
  if (!fields.present("stop")) return {};
  const Json& stop = fields.at("stop");
  std::vector<std::string> stops;
  if (stop.is_string()) {
    stops.push_back(stop.get<std::string>());
  } else if (stop.is_array()) {
    for (const auto& s : stop) {
      if (!s.is_string()) refuse("stop", "'stop' must hold strings, not " + type_name(s));
      stops.push_back(s.get<std::string>());
    }
  } else {
    refuse("stop", "'stop' must be a string or a list of strings, not " + type_name(stop));
  }
  if (static_cast<std::int64_t>(stops.size()) > limits.max_stops) {
    refuse("stop",
           "'stop' holds " + std::to_string(stops.size()) + " strings; at most " + std::to_string(limits.max_stops));
  }
  for (const auto& s : stops) {
    if (s.empty()) refuse("stop", "'stop' holds an empty string");
  }
  return stops;
}

// Fields of OpenAI's that svmoe accepts only at their neutral value.
void refuse_unoffered(const Fields& fields, std::int64_t n) {
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    if (fields.number(key, 0.0, -2.0, 2.0) != 0.0) {
      refuse(key, std::string("'") + key + "' is not offered by svmoe serve; use 'repetition_penalty' (transformers')");
    }
  }
  if (fields.integer("best_of", n, 1, 1 << 20) != n) refuse("best_of", "'best_of' other than 'n' is not offered");
  if (fields.present("logit_bias") && !(fields.at("logit_bias").is_object() && fields.at("logit_bias").empty())) {
    refuse("logit_bias", "'logit_bias' is not offered by svmoe serve");
  }
  if (!fields.string("suffix").empty()) refuse("suffix", "'suffix' (insertion) is not offered by svmoe serve");
  fields.string("user");  // accepted, unused; still a string
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, const ServeLimits& limits,
                                           const Tokenizer& tokenizer) {
  const Json json = parse_body(body);
  const Fields fields(json, completion_fields());
  check_model(fields, limits);
  CompletionRequest r;
  r.model = limits.model_name;
  r.echo = fields.boolean("echo");
  r.stream = fields.boolean("stream");
  r.max_tokens = fields.integer("max_tokens", limits.default_max_tokens, 0, limits.max_tokens,
                                " (this server's limit, serve.max_tokens)");
  if (r.max_tokens == 0 && !r.echo) {
    refuse("max_tokens", "'max_tokens' is 0 without 'echo': nothing to return (give echo: true to score the prompt)");
  }
  r.n = fields.integer("n", 1, 1, limits.max_n);
  r.temperature = fields.number("temperature", 1.0, 0.0, 2.0);
  r.top_p = fields.number("top_p", 1.0, 0.0, 1.0);
  if (r.top_p <= 0.0) refuse("top_p", "'top_p' must be above 0 (1 keeps every token)");
  r.top_k = fields.integer("top_k", 0, 0, limits.vocab_size);
  r.repetition_penalty = fields.number("repetition_penalty", 1.0, 0.0, 100.0);
  if (r.repetition_penalty <= 0.0) refuse("repetition_penalty", "'repetition_penalty' must be above 0 (1: none)");
  r.stop = read_stop(fields, limits);
  if (fields.present("seed")) {
    r.seed = static_cast<std::uint64_t>(
        fields.integer("seed", 0, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()));
  }
  r.logprobs = fields.integer("logprobs", -1, 0, limits.max_logprobs, " (this server's limit, serve.max_logprobs)");
  if (fields.present("stream_options")) {
    const Json& options = fields.at("stream_options");
    if (!r.stream) refuse("stream_options", "'stream_options' is only for 'stream': true");
    if (!options.is_object()) refuse("stream_options", "'stream_options' must be an object, not " + type_name(options));
    const Fields stream_fields(options, {"include_usage"});
    r.include_usage = stream_fields.boolean("include_usage");
  }
  r.routing = fields.boolean("svmoe_routing");
  refuse_unoffered(fields, r.n);
  if (r.n > 1 && r.temperature == 0.0) {
    refuse("n", "'n' above 1 with temperature 0 would give n copies of the same text; sample (temperature > 0)");
  }

  r.prompts = request_prompts(fields, limits, tokenizer);
  if (static_cast<std::int64_t>(r.sequences()) > limits.max_prompts) {
    refuse("n", "prompts x n is " + std::to_string(r.sequences()) + "; at most " + std::to_string(limits.max_prompts) +
                    " sequences a request");
  }
  for (std::size_t i = 0; i < r.prompts.size(); ++i) {
    const auto length = static_cast<std::int64_t>(r.prompts[i].ids.size());
    const auto which = r.prompts.size() > 1 ? "prompt " + std::to_string(i) : std::string("the prompt");
    if (limits.max_prompt_tokens > 0 && length > limits.max_prompt_tokens) {
      refuse("prompt", which + " has " + std::to_string(length) + " tokens; this server takes at most " +
                           std::to_string(limits.max_prompt_tokens) + " (serve.max_prompt_tokens)");
    }
    if (limits.context_length > 0 && length + r.max_tokens > limits.context_length) {
      refuse("max_tokens", "This model's maximum context length is " + std::to_string(limits.context_length) +
                               " tokens; " + which + " has " + std::to_string(length) + " and max_tokens is " +
                               std::to_string(r.max_tokens) + ". Shorten the prompt or lower max_tokens.");
    }
  }
  return r;
}

Json logprobs_json(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids, std::size_t first,
                   const std::vector<const TokenLogprob*>& entries) {
  const auto texts = token_texts(tokenizer, ids, first);
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(), offsets = Json::array();
  std::size_t offset = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    tokens.push_back(texts[i]);
    offsets.push_back(offset);
    offset += texts[i].size();
    const TokenLogprob* entry = i < entries.size() ? entries[i] : nullptr;
    if (entry == nullptr) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      continue;
    }
    token_logprobs.push_back(entry->logprob);
    // The k most likely, and the token itself when it is not among them (as vLLM does); a text
    // two tokens share keeps the likelier one.
    Json top = Json::object();
    for (const auto& [id, logprob] : entry->top) {
      const auto text = tokenizer.decode({id}, false);
      if (!top.contains(text)) top[text] = logprob;
    }
    if (!top.contains(texts[i])) top[texts[i]] = entry->logprob;
    top_logprobs.push_back(std::move(top));
  }
  return {
      {"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
}

Json routing_json(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids, std::size_t first,
                  const std::vector<std::vector<ExpertChoice>>& routing, const std::vector<std::string>& routers) {
  const auto texts = token_texts(tokenizer, ids, first);
  Json tokens = Json::array();
  for (std::size_t i = 0; i < texts.size() && i < routing.size(); ++i) {
    Json experts = Json::array(), weights = Json::array();
    for (const auto& choice : routing[i]) {
      experts.push_back(choice.experts);
      weights.push_back(choice.weights);
    }
    tokens.push_back({{"token", ids[first + i]}, {"text", texts[i]}, {"experts", experts}, {"weights", weights}});
  }
  return {{"routers", routers}, {"tokens", tokens}};
}

Json choice_json(const CompletionRequest& request, std::size_t index, const ChoiceResult& result,
                 const Tokenizer& tokenizer, const std::vector<std::string>& routers) {
  const auto& prompt = request.prompts[index / static_cast<std::size_t>(request.n)];
  std::vector<std::int32_t> ids = prompt.ids;
  ids.insert(ids.end(), result.generated.tokens.begin(), result.generated.tokens.end());
  const std::size_t first = request.echo ? 0 : prompt.ids.size();
  Json choice = {{"index", index},
                 {"text", (request.echo ? prompt.text : std::string()) + result.generated.text},
                 {"logprobs", nullptr},
                 {"finish_reason", request.max_tokens == 0 ? "length" : finish_reason_name(result.generated.finish)}};
  if (request.logprobs >= 0) {
    std::vector<const TokenLogprob*> entries;
    if (request.echo) {
      entries.push_back(nullptr);  // the first token has nothing before it
      for (const auto& entry : result.prompt_logprobs) entries.push_back(&entry);
    }
    for (const auto& entry : result.generated.logprobs) entries.push_back(&entry);
    choice["logprobs"] = logprobs_json(tokenizer, ids, first, entries);
  }
  if (request.routing) choice["svmoe_routing"] = routing_json(tokenizer, ids, first, result.routing, routers);
  return choice;
}

Json completion_json(const std::string& id, std::int64_t created, const std::string& model, Json choices,
                     const Json& usage) {
  Json out = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", std::move(choices)}};
  if (!usage.is_null()) out["usage"] = usage;
  return out;
}

Json usage_json(std::int64_t prompt_tokens, std::int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

std::size_t sendable_text_bytes(const std::string& text, bool finished, std::size_t hold_back) {
  if (finished) return text.size();
  std::size_t n = text.size();
  const std::string replacement = "\xEF\xBF\xBD";  // U+FFFD
  while (n >= 3 && text.compare(n - 3, 3, replacement) == 0) n -= 3;
  // A trailing character whose continuation bytes have not all come yet.
  std::size_t start = n, continuation = 0;
  while (start > 0 && continuation < 4 && (static_cast<unsigned char>(text[start - 1]) & 0xC0) == 0x80) {
    --start;
    ++continuation;
  }
  if (start > 0) {
    const auto lead = static_cast<unsigned char>(text[start - 1]);
    const std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (length > continuation + 1) n = start - 1;
  }
  n = n > hold_back ? n - hold_back : 0;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // a character boundary
  return n;
}

Json tokenize_response(const std::string& body, const ServeLimits& limits, const Tokenizer& tokenizer) {
  const Json json = parse_body(body);
  const Fields fields(json, {"model", "prompt", "add_special_tokens"});
  check_model(fields, limits);
  if (!fields.present("prompt") || !fields.at("prompt").is_string()) {
    refuse("prompt", "'prompt' must be a string");
  }
  const bool special = !fields.present("add_special_tokens") || fields.boolean("add_special_tokens");
  const auto text = fields.string("prompt");
  const auto ids = special ? encode_prompt(tokenizer, text) : tokenizer.encode(text, false);
  return {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", limits.context_length}};
}

Json detokenize_response(const std::string& body, const ServeLimits& limits, const Tokenizer& tokenizer) {
  const Json json = parse_body(body);
  const Fields fields(json, {"model", "tokens"});
  check_model(fields, limits);
  if (!fields.present("tokens") || !fields.at("tokens").is_array()) {
    refuse("tokens", "'tokens' must be a list of token ids");
  }
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < fields.at("tokens").size(); ++i) {
    ids.push_back(checked_id(fields.at("tokens")[i], limits, "tokens", "token " + std::to_string(i)));
  }
  return {{"prompt", tokenizer.decode(ids)}};
}

}  // namespace svmoe
