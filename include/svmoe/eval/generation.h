// Text generation from a causal LM of any architecture svmoe runs (docs/generation.md).
// A batch of prompts of different lengths is left-padded and decoded step by step with a
// DecodingCache (model/causal_lm.h): each step runs only the new token of each row. Without the
// cache, every step runs each row's whole sequence again (the reference the cache is tested
// against). The next token is chosen as transformers' sampling does, in this order:
//   repetition penalty  l_i / p if l_i > 0 else l_i * p, for each id already in the sequence
//   temperature         l / T (T = 0: greedy, the first largest logit)
//   top-k               the k largest logits
//   top-p               the smallest set of the most likely tokens whose probability reaches p
// then one draw from the renormalised distribution, with each request's own random generator.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "svmoe/model/causal_lm.h"
#include "svmoe/text/tokenizer.h"

namespace svmoe {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy
  std::int64_t top_k = 0;    // 0: all tokens
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  std::uint64_t seed = 0;  // the request's generator; the same seed gives the same text
};

// Chooses next tokens for one sequence.
class TokenSampler {
 public:
  explicit TokenSampler(const SamplingOptions& options);
  // `logits` [vocab] of the last position; `context` the ids so far (prompt and generated).
  std::int32_t next(std::vector<double> logits, const std::vector<std::int32_t>& context);

 private:
  SamplingOptions options_;
  std::mt19937_64 generator_;
};

struct GenerationRequest {
  std::vector<std::int32_t> prompt;  // token ids, not empty
  std::int64_t max_new_tokens = 64;
  std::vector<std::string> stop;  // the text ends before the first of these
  SamplingOptions sampling;
  // -1: no log-probs; k >= 0: each generated token's log-probability and the k most likely tokens'.
  std::int64_t logprobs = -1;
};

// The log-probabilities at one position: log_softmax of the model's raw logits (before the
// sampler's penalty, temperature and truncation, as OpenAI and vLLM report them).
struct TokenLogprob {
  std::int32_t token = 0;  // the token that came next
  double logprob = 0;
  std::vector<std::pair<std::int32_t, double>> top;  // the k most likely, most likely first
};

enum class FinishReason {
  kLength,     // max_new_tokens reached
  kStop,       // an end-of-text token or a stop string
  kCancelled,  // GenerationOptions::on_token asked to stop (a client that went away)
};
const char* finish_reason_name(FinishReason reason);  // "length", "stop" (OpenAI's names), "cancelled"

struct GeneratedText {
  std::vector<std::int32_t> tokens;  // the new ids (an end-of-text id included, text after a stop string not)
  std::string text;                  // their text, cut before a stop string
  FinishReason finish = FinishReason::kLength;
  std::vector<TokenLogprob> logprobs;  // one per token when the request asked (logprobs >= 0)
  bool finished = false;               // the last token has been made
};

struct GenerationTimings {
  std::int64_t prompt_tokens = 0;
  double prompt_seconds = 0;  // the first step: every prompt token at once
  std::int64_t generated_tokens = 0;
  double generation_seconds = 0;  // the steps after it
};

struct GenerationOptions {
  bool kv_cache = true;
  // Ids that end a sequence (the tokenizer's EOS and config.json's eos_token_id).
  std::vector<std::int32_t> end_of_text;
  // Called after every token a request gets, with its result so far (streaming); returning false
  // ends that request with FinishReason::kCancelled (the others go on).
  std::function<bool(std::size_t request, const GeneratedText& so_far)> on_token;
};

// Generates for every request as one batch. `tokenizer` decodes the text and finds the stop
// strings (null: ids only, for benchmarks). `timings`, when given, receives this batch's counts and
// seconds (added to what it holds).
std::vector<GeneratedText> generate(CausalLMImpl& model, const Tokenizer* tokenizer,
                                    const std::vector<GenerationRequest>& requests, const GenerationOptions& options,
                                    GenerationTimings* timings = nullptr);

// The speed of generation alone (svmoe bench --generate): `batch` random prompts of
// `prompt_length` ids, greedy for exactly `new_tokens` (no end-of-text), with or without the cache.
GenerationTimings time_generation(CausalLMImpl& model, std::int64_t batch, std::int64_t prompt_length,
                                  std::int64_t new_tokens, bool kv_cache, std::uint64_t seed);

// Which experts each token of `ids` went to, per router (model/causal_lm.h token_routing), for
// positions from `first` on: [position - first][router]. Runs the whole sequence once.
struct ExpertChoice {
  std::vector<std::int64_t> experts;
  std::vector<double> weights;
};
std::vector<std::vector<ExpertChoice>> routing_of_tokens(CausalLMImpl& model, const std::vector<std::int32_t>& ids,
                                                         std::size_t first);

// The log-probabilities of ids[1..] each given the ids before it (one run of the whole sequence):
// [position - 1], with the `top` most likely tokens at each position. What a scoring request's
// `echo` reports for its prompt.
std::vector<TokenLogprob> sequence_logprobs(CausalLMImpl& model, const std::vector<std::int32_t>& ids,
                                            std::int64_t top);

// The log-probabilities of `token` and the `top` most likely tokens under one position's logits.
TokenLogprob token_logprob(const std::vector<double>& logits, std::int32_t token, std::int64_t top);

// The own text of each token of ids[first..] within the text of `ids` (decoded with the tokens
// just before it, so that a word's leading space stays with its token); joined, they give the
// decoded text where the tokens decode one by one to whole characters.
std::vector<std::string> token_texts(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids,
                                     std::size_t first = 0);

// The prompt's ids as generation wants them: the tokenizer's special tokens at the start (BOS)
// but no end-of-text after the prompt.
std::vector<std::int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& prompt);

// The ids that end a sequence for this model and tokenizer.
std::vector<std::int32_t> end_of_text_ids(const ModelConfig& config, const Tokenizer& tokenizer);

}  // namespace svmoe
