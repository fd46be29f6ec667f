// The completions protocol without HTTP: every prompt form reads as the model's ids, every bad
// field is refused with a 4xx naming it, and the streaming text is sent only in whole characters
// and never past what may begin a stop string.
#include "svmoe/serve/completions.h"

#include <gtest/gtest.h>

#include <random>

#include "test_support.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;

struct Protocol : ::testing::Test {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  ServeLimits limits = [&] {
    ServeLimits l;
    l.model_name = "tiny";
    l.vocab_size = tokenizer->vocab_size();
    l.context_length = 64;
    l.max_prompt_tokens = 48;
    l.max_tokens = 32;
    return l;
  }();
  CompletionRequest parse(const Json& body) const { return parse_completion_request(body.dump(), limits, *tokenizer); }
  // The refusal of `body`: "STATUS param: message".
  std::string refusal(const std::string& body) const {
    try {
      parse_completion_request(body, limits, *tokenizer);
    } catch (const ProtocolError& e) {
      return std::to_string(e.status()) + " " + e.param() + ": " + e.what();
    }
    return "accepted";
  }
  std::string refusal(const Json& body) const { return refusal(body.dump()); }
};

TEST_F(Protocol, EveryPromptFormReadsAsTheModelsIds) {
  const auto ids = encode_prompt(*tokenizer, "Hello world");
  const auto text = parse({{"prompt", "Hello world"}});
  ASSERT_EQ(text.prompts.size(), 1u);
  EXPECT_EQ(text.prompts[0].ids, ids);
  EXPECT_EQ(text.prompts[0].text, "Hello world");
  EXPECT_EQ(text.max_tokens, limits.default_max_tokens);
  EXPECT_EQ(text.temperature, 1.0);  // OpenAI's defaults

  const auto one_list = parse({{"prompt", ids}});
  EXPECT_EQ(one_list.prompts[0].ids, ids);
  const auto lists = parse({{"prompt", Json::array({ids, Json::array({5, 6})})}, {"n", 2}, {"temperature", 0.5}});
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_EQ(lists.prompts[1].ids, (std::vector<std::int32_t>{5, 6}));
  EXPECT_EQ(lists.sequences(), 4u);
  const auto strings = parse({{"prompt", {"a b", "c"}},
                              {"model", "tiny"},
                              {"stop", "\n"},
                              {"logprobs", 3},
                              {"echo", true},
                              {"max_tokens", 0},
                              {"seed", -5},
                              {"user", "me"},
                              {"presence_penalty", 0},
                              {"best_of", 1},
                              {"logit_bias", Json::object()}});
  EXPECT_EQ(strings.prompts.size(), 2u);
  EXPECT_EQ(strings.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(strings.logprobs, 3);
  EXPECT_EQ(*strings.seed, static_cast<std::uint64_t>(-5));
  const auto streamed = parse({{"prompt", "x"},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}},
                               {"svmoe_routing", true},
                               {"top_k", 5},
                               {"repetition_penalty", 1.2}});
  EXPECT_TRUE(streamed.stream && streamed.include_usage && streamed.routing);
  EXPECT_EQ(parse({{"prompt", "x"}, {"max_tokens", nullptr}}).max_tokens, limits.default_max_tokens);  // null: absent
}

TEST_F(Protocol, BadRequestsAreRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"prompt\": ", "400 : the request body is not valid JSON"},
      {"[1, 2]", "400 : the request body must be a JSON object, not an array"},
      {"{\"prompt\": \"caf\xC3\"}", "400 : the request body is not valid JSON"},  // invalid UTF-8
      {R"({"prompt": "x", "temprature": 1})", "400 temprature: unknown field 'temprature'"},
      {R"({"max_tokens": 5})", "400 prompt: 'prompt' is missing"},
      {R"({"prompt": ""})", "400 prompt: the prompt is empty"},
      {R"({"prompt": []})", "400 prompt: 'prompt' is an empty list"},
      {R"({"prompt": ["a", ""]})", "400 prompt: prompt 1 is empty"},
      {R"({"prompt": [[]]})", "400 prompt: prompt 0 is an empty list of token ids"},
      {R"({"prompt": 7})", "400 prompt: 'prompt' must be a string, a list of strings"},
      {R"({"prompt": [1, "a"]})", "400 prompt: the prompt token 1 must be a token id (an integer), not a string"},
      {R"({"prompt": [1, 2.5]})", "400 prompt: the prompt token 1 must be a token id (an integer), not a number"},
      {R"({"prompt": [1, -1]})", "400 prompt: the prompt token 1 is -1, outside the vocabulary"},
      {R"({"prompt": [[1], [100000000]]})", "400 prompt: prompt 1 token 0 is 100000000, outside the vocabulary"},
      {R"({"prompt": "x", "max_tokens": "5"})", "400 max_tokens: 'max_tokens' must be an integer, not a string"},
      {R"({"prompt": "x", "max_tokens": -1})", "400 max_tokens: 'max_tokens' is -1, below 0"},
      {R"({"prompt": "x", "max_tokens": 33})", "400 max_tokens: 'max_tokens' is 33, above 32 (this server's limit"},
      {R"({"prompt": "x", "max_tokens": 18446744073709551615})",
       "400 max_tokens: 'max_tokens' is 18446744073709551615, above 32"},
      {R"({"prompt": "x", "max_tokens": 0})", "400 max_tokens: 'max_tokens' is 0 without 'echo'"},
      {R"({"prompt": "x", "temperature": 3})", "400 temperature: 'temperature' is 3; it must be between 0.0 and 2.0"},
      {R"({"prompt": "x", "top_p": 0})", "400 top_p: 'top_p' must be above 0"},
      {R"({"prompt": "x", "n": 0})", "400 n: 'n' is 0, below 1"},
      {R"({"prompt": "x", "n": 2, "temperature": 0})", "400 n: 'n' above 1 with temperature 0"},
      {R"({"prompt": "x", "logprobs": 21})", "400 logprobs: 'logprobs' is 21, above 20"},
      {R"({"prompt": "x", "logprobs": true})", "400 logprobs: 'logprobs' must be an integer, not a boolean"},
      {R"({"prompt": "x", "echo": "yes"})", "400 echo: 'echo' must be true or false, not a string"},
      {R"({"prompt": "x", "stop": ["a", 1]})", "400 stop: 'stop' must hold strings, not an integer"},
      {R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", "400 stop: 'stop' holds 5 strings; at most 4"},
      {R"({"prompt": "x", "stop": [""]})", "400 stop: 'stop' holds an empty string"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})",
       "400 stream_options: 'stream_options' is only for"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"usage": 1}})", "400 usage: unknown field 'usage'"},
      {R"({"prompt": "x", "frequency_penalty": 0.5})", "400 frequency_penalty: 'frequency_penalty' is not offered"},
      {R"({"prompt": "x", "best_of": 3})", "400 best_of: 'best_of' other than 'n' is not offered"},
      {R"({"prompt": "x", "logit_bias": {"5": 100}})", "400 logit_bias: 'logit_bias' is not offered"},
      {R"({"prompt": "x", "suffix": "end"})", "400 suffix: 'suffix' (insertion) is not offered"},
      {R"({"prompt": "x", "model": "other"})",
       "404 model: The model 'other' does not exist; this server serves 'tiny'"},
  };
  for (const auto& [body, expected] : cases) {
    EXPECT_EQ(refusal(body).rfind(expected, 0), 0u) << body << "\n  gave: " << refusal(body);
  }
}

TEST_F(Protocol, PromptsPastTheLimitsOrTheContextAreRefused) {
  const std::vector<std::int32_t> long_prompt(49, 5);
  EXPECT_EQ(refusal(Json{{"prompt", long_prompt}})
                .rfind("400 prompt: the prompt has 49 tokens; this server takes at most 48", 0),
            0u);
  const std::vector<std::int32_t> prompt(40, 5);
  EXPECT_EQ(refusal(Json{{"prompt", prompt}, {"max_tokens", 25}})
                .rfind("400 max_tokens: This model's maximum context length is 64 tokens; the prompt has 40 and "
                       "max_tokens is 25",
                       0),
            0u);
  EXPECT_EQ(refusal(Json{{"prompt", prompt}, {"max_tokens", 24}}), "accepted");
}

TEST_F(Protocol, DetokenizeNamesItsTokensFieldInItsErrors) {
  const std::vector<std::int32_t> ids = tokenizer->encode("hello", false);
  EXPECT_EQ(detokenize_response(Json{{"tokens", ids}}.dump(), limits, *tokenizer)["prompt"].get<std::string>(),
            tokenizer->decode(ids));
  for (const Json& tokens : {Json::array({1, limits.vocab_size}), Json::array({1, "two"})}) {
    try {
      detokenize_response(Json{{"tokens", tokens}}.dump(), limits, *tokenizer);
      ADD_FAILURE() << tokens.dump() << " was accepted";
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.param(), "tokens") << e.what();
      EXPECT_NE(std::string(e.what()).find("token 1"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Protocol, ErrorBodiesAreOpenAIs) {
  const auto body = error_body(ProtocolError(400, "'n' is 0, below 1", "n"));
  EXPECT_EQ(body["error"]["message"].get<std::string>(), "'n' is 0, below 1");
  EXPECT_EQ(body["error"]["type"].get<std::string>(), "invalid_request_error");
  EXPECT_EQ(body["error"]["param"].get<std::string>(), "n");
  EXPECT_TRUE(body["error"]["code"].is_null());
}

// The law of streaming: what is sent is a prefix of the final text, in whole characters, and
// never a byte that a stop string may still claim.
TEST(StreamingText, SendsWholeCharactersAndHoldsBackWhatMayBeginAStopString) {
  const std::string text = "ab\xE3\x81";  // "ab" and the first two bytes of a three-byte character
  EXPECT_EQ(sendable_text_bytes(text, false, 0), 2u);
  EXPECT_EQ(sendable_text_bytes(text + "\x82", false, 0), 5u);
  EXPECT_EQ(sendable_text_bytes("ab\xEF\xBF\xBD", false, 0), 2u);  // U+FFFD: a byte the next token may complete
  EXPECT_EQ(sendable_text_bytes("abcdef", false, 2), 4u);
  EXPECT_EQ(sendable_text_bytes("ab\xE3\x81\x82", false, 1), 2u);  // never half a character
  EXPECT_EQ(sendable_text_bytes("ab", false, 5), 0u);
  EXPECT_EQ(sendable_text_bytes(text, true, 3), text.size());  // finished: everything
}

TEST(ServerSentEvent, ReplacesInvalidUtf8) {
  const auto event = server_sent_event(Json{{"text", std::string("a\xE3")}});
  EXPECT_EQ(event, "data: {\"text\":\"a\xEF\xBF\xBD\"}\n\n");
}

TEST_F(Protocol, LogprobsNameEachTokensTextAndTheMostLikelyAlternatives) {
  const auto ids = encode_prompt(*tokenizer, "Hello world");
  ASSERT_GE(ids.size(), 3u);
  std::vector<double> logits(static_cast<std::size_t>(tokenizer->vocab_size()), 0.0);
  logits[7] = 3.0;
  logits[9] = 2.0;
  const auto second = token_logprob(logits, ids[1], 2);
  const auto third = token_logprob(logits, ids[2], 2);
  const auto json = logprobs_json(*tokenizer, ids, 0, {nullptr, &second, &third});
  ASSERT_EQ(json["tokens"].size(), ids.size());
  EXPECT_TRUE(json["token_logprobs"][0].is_null());
  EXPECT_TRUE(json["top_logprobs"][0].is_null());
  EXPECT_DOUBLE_EQ(json["token_logprobs"][1].get<double>(), second.logprob);
  // The two most likely and the token itself.
  EXPECT_EQ(json["top_logprobs"][1].size(), 3u) << json.dump();
  EXPECT_DOUBLE_EQ(json["top_logprobs"][1][tokenizer->decode({7}, false)].get<double>(), second.top[0].second);
  std::string joined;
  for (const auto& t : json["tokens"]) joined += t.get<std::string>();
  EXPECT_EQ(joined, tokenizer->decode(ids, false));
  EXPECT_EQ(json["text_offset"][2].get<std::size_t>(),
            json["tokens"][0].get<std::string>().size() + json["tokens"][1].get<std::string>().size());
}

// No body, however mangled, gets anything but an accepted request or a ProtocolError (under the
// sanitizers too): bytes of valid requests flipped, dropped, duplicated and cut, 5,000 times.
TEST_F(Protocol, MangledBodiesAreRefusedNeverCrash) {
  const std::vector<std::string> seeds = {
      R"({"model": "tiny", "prompt": ["Once", "upon"], "max_tokens": 5, "temperature": 0.7, "n": 2, "seed": 9})",
      R"({"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 0, "echo": true, "logprobs": 3, "stop": ["a", "b"]})",
      R"({"prompt": "caf\u00e9", "stream": true, "stream_options": {"include_usage": true}, "svmoe_routing": true})",
  };
  std::mt19937_64 random(2026);
  const std::string alphabet = "{}[]\":,0123456789-+.eE truefalsn\\\xC3\xA9\xFF\x00";
  int accepted = 0, refused = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string body = seeds[random() % seeds.size()];
    for (int edits = 1 + static_cast<int>(random() % 4); edits > 0 && !body.empty(); --edits) {
      const auto at = random() % body.size();
      switch (random() % 4) {
        case 0:
          body[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          body.erase(at, 1 + random() % 8);
          break;
        case 2:
          body.insert(at, body.substr(at, 1 + random() % 8));
          break;
        default:
          body.resize(at);
          break;
      }
    }
    try {
      parse_completion_request(body, limits, *tokenizer);
      ++accepted;
    } catch (const ProtocolError& e) {
      ++refused;
      EXPECT_GE(e.status(), 400);
      EXPECT_LT(e.status(), 500);
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 10);
}

}  // namespace
}  // namespace svmoe
