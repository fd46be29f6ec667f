#include "svmoe/eval/generation.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <unordered_set>

#include "svmoe/util/error.h"

namespace svmoe {

TokenSampler::TokenSampler(const SamplingOptions& options) : options_(options), generator_(options.seed) {}

std::int32_t TokenSampler::next(std::vector<double> logits, const std::vector<std::int32_t>& context) {
  if (options_.repetition_penalty != 1.0) {
    std::unordered_set<std::int32_t> seen(context.begin(), context.end());
    for (const auto id : seen) {
      if (id < 0 || static_cast<std::size_t>(id) >= logits.size()) continue;
      double& l = logits[static_cast<std::size_t>(id)];
      l = l > 0 ? l / options_.repetition_penalty : l * options_.repetition_penalty;
    }
  }
  if (options_.temperature <= 0.0) {
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // The candidates, most likely first (ties: the lower id first, so that the draw is reproducible).
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto more_likely = [&](std::int32_t a, std::int32_t b) {
    const auto la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::size_t kept = order.size();
  if (options_.top_k > 0 && static_cast<std::size_t>(options_.top_k) < kept) {
    kept = static_cast<std::size_t>(options_.top_k);
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(kept - 1), order.end(), more_likely);
  }
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(kept), more_likely);
  // Softmax of l / T over the kept candidates.
  const double top = logits[static_cast<std::size_t>(order[0])] / options_.temperature;
  std::vector<double> probabilities(kept);
  double total = 0;
  for (std::size_t i = 0; i < kept; ++i) {
    probabilities[i] = std::exp(logits[static_cast<std::size_t>(order[i])] / options_.temperature - top);
    total += probabilities[i];
  }
  if (options_.top_p < 1.0) {  // the shortest most-likely prefix whose mass reaches top_p
    double mass = 0;
    std::size_t i = 0;
    while (i < kept) {
      mass += probabilities[i++] / total;
      if (mass >= options_.top_p) break;
    }
    kept = i;
    total = std::accumulate(probabilities.begin(), probabilities.begin() + static_cast<std::ptrdiff_t>(kept), 0.0);
  }
  double draw = std::uniform_real_distribution<double>(0.0, total)(generator_);
  for (std::size_t i = 0; i < kept; ++i) {
    draw -= probabilities[i];
    if (draw < 0) return order[i];
  }
  return order[kept - 1];
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One request's progress.
struct Sequence {
  const GenerationRequest* request;
  TokenSampler sampler;
  std::vector<std::int32_t> ids;  // prompt, then the generated tokens
  GeneratedText result;
};

// Appends `token` to the sequence and decides whether it has finished: an end-of-text id, a stop
// string in the text (the text is cut before it, and the tokens after the one that completed it
// are never made), or max_new_tokens.
void append_token(Sequence& sequence, std::int32_t token, const Tokenizer* tokenizer,
                  const std::vector<std::int32_t>& end_of_text) {
  sequence.ids.push_back(token);
  GeneratedText& result = sequence.result;
  result.tokens.push_back(token);
  if (tokenizer != nullptr) result.text = tokenizer->decode(result.tokens);
  if (std::find(end_of_text.begin(), end_of_text.end(), token) != end_of_text.end()) {
    result.finish = FinishReason::kStop;
    result.finished = true;
    return;
  }
  std::size_t cut = std::string::npos;
  for (const auto& stop : sequence.request->stop) {
    if (!stop.empty()) cut = std::min(cut, result.text.find(stop));
  }
  if (cut != std::string::npos) {
    result.text.resize(cut);
    result.finish = FinishReason::kStop;
    result.finished = true;
    return;
  }
  if (static_cast<std::int64_t>(result.tokens.size()) >= sequence.request->max_new_tokens) {
    result.finish = FinishReason::kLength;
    result.finished = true;
  }
}

// logits [B, V] (any dtype and device) -> one row of doubles per sequence.
std::vector<std::vector<double>> host_rows(const torch::Tensor& logits) {
  const auto host = logits.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto vocab = host.size(1);
  std::vector<std::vector<double>> rows;
  for (std::int64_t b = 0; b < host.size(0); ++b) {
    const double* row = host.data_ptr<double>() + b * vocab;
    rows.emplace_back(row, row + vocab);
  }
  return rows;
}

// Samples each row's next token (with its log-probs when asked), appends it, and tells
// options.on_token, which may cancel the row.
void choose_next_tokens(std::vector<Sequence>& sequences, const torch::Tensor& last_logits, const Tokenizer* tokenizer,
                        const GenerationOptions& options, const std::vector<std::size_t>& rows) {
  auto logits = host_rows(last_logits);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    Sequence& sequence = sequences[rows[i]];
    const auto top = sequence.request->logprobs;
    const auto token = top >= 0 ? sequence.sampler.next(logits[i], sequence.ids)
                                : sequence.sampler.next(std::move(logits[i]), sequence.ids);
    if (top >= 0) sequence.result.logprobs.push_back(token_logprob(logits[i], token, top));
    append_token(sequence, token, tokenizer, options.end_of_text);
    if (options.on_token && !options.on_token(rows[i], sequence.result) && !sequence.result.finished) {
      sequence.result.finish = FinishReason::kCancelled;
      sequence.result.finished = true;
    }
  }
}

std::vector<std::size_t> unfinished(const std::vector<Sequence>& sequences) {
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    if (!sequences[i].result.finished) rows.push_back(i);
  }
  return rows;
}

torch::Tensor id_tensor(const std::vector<std::int64_t>& ids, std::int64_t rows, torch::Device device) {
  return torch::tensor(ids, torch::kInt64).view({rows, -1}).to(device);
}

// With the cache: one step over the left-padded prompts, then one new token a row per step.
// Finished rows keep stepping as padding (their positions are never read by the others).
void generate_with_cache(CausalLMImpl& model, std::vector<Sequence>& sequences, const Tokenizer* tokenizer,
                         const GenerationOptions& options, GenerationTimings& timings) {
  const auto device = model.output_embedding().device();
  const auto batch = static_cast<std::int64_t>(sequences.size());
  std::int64_t longest = 0, most_new = 0;
  for (const auto& s : sequences) {
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(s.ids.size()));
    most_new = std::max(most_new, s.request->max_new_tokens);
  }
  DecodingCache cache = model.new_cache(batch, longest + most_new);
  std::vector<std::int64_t> ids, valid;
  for (const auto& s : sequences) {
    const auto padding = longest - static_cast<std::int64_t>(s.ids.size());
    for (std::int64_t i = 0; i < padding; ++i) ids.push_back(s.ids.front()), valid.push_back(0);
    for (const auto id : s.ids) ids.push_back(id), valid.push_back(1);
  }
  const auto start = Clock::now();
  auto output = model.forward(id_tensor(ids, batch, device), id_tensor(valid, batch, device).to(torch::kBool), cache);
  std::vector<std::size_t> all(sequences.size());
  std::iota(all.begin(), all.end(), 0);
  choose_next_tokens(sequences, output.logits.select(1, longest - 1), tokenizer, options, all);
  timings.prompt_seconds += seconds_since(start);

  const auto generation_start = Clock::now();
  while (!unfinished(sequences).empty()) {
    ids.clear();
    valid.clear();
    for (const auto& s : sequences) ids.push_back(s.ids.back()), valid.push_back(s.result.finished ? 0 : 1);
    output = model.forward(id_tensor(ids, batch, device), id_tensor(valid, batch, device).to(torch::kBool), cache);
    const auto rows = unfinished(sequences);
    const auto last = output.logits.select(1, 0);  // [B, V]
    choose_next_tokens(
        sequences,
        last.index_select(0,
                          torch::tensor(std::vector<std::int64_t>(rows.begin(), rows.end()), torch::kInt64).to(device)),
        tokenizer, options, rows);
  }
  timings.generation_seconds += seconds_since(generation_start);
}

// Without the cache: every step runs each unfinished row's whole sequence (rows of one length as
// one batch, no padding).
void generate_by_recomputing(CausalLMImpl& model, std::vector<Sequence>& sequences, const Tokenizer* tokenizer,
                             const GenerationOptions& options, GenerationTimings& timings) {
  const auto device = model.output_embedding().device();
  bool first = true;
  auto start = Clock::now();
  for (auto rows = unfinished(sequences); !rows.empty(); rows = unfinished(sequences)) {
    std::map<std::size_t, std::vector<std::size_t>> by_length;
    for (const auto row : rows) by_length[sequences[row].ids.size()].push_back(row);
    for (const auto& [length, group] : by_length) {
      std::vector<std::int64_t> ids;
      for (const auto row : group) ids.insert(ids.end(), sequences[row].ids.begin(), sequences[row].ids.end());
      const auto output = model.forward(id_tensor(ids, static_cast<std::int64_t>(group.size()), device));
      choose_next_tokens(sequences, output.logits.select(1, static_cast<std::int64_t>(length) - 1), tokenizer, options,
                         group);
    }
    if (first) {
      timings.prompt_seconds += seconds_since(start);
      start = Clock::now();
      first = false;
    }
  }
  timings.generation_seconds += seconds_since(start);
}

}  // namespace

std::vector<GeneratedText> generate(CausalLMImpl& model, const Tokenizer* tokenizer,
                                    const std::vector<GenerationRequest>& requests, const GenerationOptions& options,
                                    GenerationTimings* timings) {
  if (requests.empty()) return {};
  std::vector<Sequence> sequences;
  GenerationTimings counted;
  for (const auto& request : requests) {
    if (request.prompt.empty()) throw Error("generate: an empty prompt (it needs at least one token)");
    if (request.max_new_tokens < 1) throw Error("generate: max_new_tokens must be at least 1");
    sequences.push_back({&request, TokenSampler(request.sampling), request.prompt, {}});
    counted.prompt_tokens += static_cast<std::int64_t>(request.prompt.size());
  }
  torch::NoGradGuard no_grad;
  if (options.kv_cache) {
    generate_with_cache(model, sequences, tokenizer, options, counted);
  } else {
    generate_by_recomputing(model, sequences, tokenizer, options, counted);
  }
  std::vector<GeneratedText> results;
  for (auto& sequence : sequences) {
    counted.generated_tokens += static_cast<std::int64_t>(sequence.result.tokens.size());
    results.push_back(std::move(sequence.result));
  }
  if (timings != nullptr) {
    timings->prompt_tokens += counted.prompt_tokens;
    timings->prompt_seconds += counted.prompt_seconds;
    timings->generated_tokens += counted.generated_tokens;
    timings->generation_seconds += counted.generation_seconds;
  }
  return results;
}

GenerationTimings time_generation(CausalLMImpl& model, std::int64_t batch, std::int64_t prompt_length,
                                  std::int64_t new_tokens, bool kv_cache, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(model.config().vocab_size - 1));
  std::vector<GenerationRequest> requests(static_cast<std::size_t>(batch));
  for (auto& request : requests) {
    for (std::int64_t i = 0; i < prompt_length; ++i) request.prompt.push_back(id(random));
    request.max_new_tokens = new_tokens;
  }
  GenerationTimings timings;
  generate(model, nullptr, requests, {kv_cache, {}, {}}, &timings);
  return timings;
}

std::vector<std::vector<ExpertChoice>> routing_of_tokens(CausalLMImpl& model, const std::vector<std::int32_t>& ids,
                                                         std::size_t first) {
  torch::NoGradGuard no_grad;
  const std::vector<std::int64_t> wide(ids.begin(), ids.end());
  const auto output = model.forward(id_tensor(wide, 1, model.output_embedding().device()));
  const auto routing = token_routing(model, output.router_logits);
  std::vector<std::vector<ExpertChoice>> choices(ids.size() > first ? ids.size() - first : 0);
  for (const auto& router : routing) {
    const auto experts = router.experts.to(torch::kCPU, torch::kInt64).contiguous();
    const auto weights = router.weights.to(torch::kCPU, torch::kFloat64).contiguous();
    const auto k = experts.size(1);
    for (std::size_t position = first; position < ids.size(); ++position) {
      const auto* e = experts.data_ptr<std::int64_t>() + static_cast<std::int64_t>(position) * k;
      const auto* w = weights.data_ptr<double>() + static_cast<std::int64_t>(position) * k;
      choices[position - first].push_back({{e, e + k}, {w, w + k}});
    }
  }
  return choices;
}

TokenLogprob token_logprob(const std::vector<double>& logits, std::int32_t token, std::int64_t top) {
  // log p_i = l_i - log sum_j exp l_j, the sum taken from the largest logit for stability.
  const double largest = *std::max_element(logits.begin(), logits.end());
  double total = 0;
  for (const double l : logits) total += std::exp(l - largest);
  const double log_total = largest + std::log(total);
  TokenLogprob out;
  out.token = token;
  out.logprob = logits[static_cast<std::size_t>(token)] - log_total;
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(top, 0)), logits.size());
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::int32_t a, std::int32_t b) {
                      const auto la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
                      return la > lb || (la == lb && a < b);
                    });
  for (std::size_t i = 0; i < k; ++i)
    out.top.emplace_back(order[i], logits[static_cast<std::size_t>(order[i])] - log_total);
  return out;
}

std::vector<TokenLogprob> sequence_logprobs(CausalLMImpl& model, const std::vector<std::int32_t>& ids,
                                            std::int64_t top) {
  if (ids.size() < 2) return {};
  torch::NoGradGuard no_grad;
  const std::vector<std::int64_t> wide(ids.begin(), ids.end());
  const auto output = model.forward(id_tensor(wide, 1, model.output_embedding().device()));
  // Position t's logits predict ids[t + 1].
  const auto rows = host_rows(output.logits[0].slice(0, 0, static_cast<std::int64_t>(ids.size()) - 1));
  std::vector<TokenLogprob> out;
  out.reserve(rows.size());
  for (std::size_t t = 0; t < rows.size(); ++t) out.push_back(token_logprob(rows[t], ids[t + 1], top));
  return out;
}

std::vector<std::string> token_texts(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids,
                                     std::size_t first) {
  // Decoding each token with up to kContext tokens before it keeps the spaces and the bytes that
  // the decoder merges across tokens (SentencePiece's leading space, byte fallback) where they
  // belong; the token's text is what it adds to the decoded context.
  constexpr std::size_t kContext = 4;
  std::vector<std::string> texts;
  for (std::size_t i = first; i < ids.size(); ++i) {
    const std::size_t begin = i > kContext ? i - kContext : 0;
    const std::vector<std::int32_t> before(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                           ids.begin() + static_cast<std::ptrdiff_t>(i));
    std::vector<std::int32_t> with = before;
    with.push_back(ids[i]);
    const auto context = tokenizer.decode(before, false);
    auto text = tokenizer.decode(with, false);
    texts.push_back(text.compare(0, context.size(), context) == 0 ? text.substr(context.size()) : std::move(text));
  }
  return texts;
}

std::vector<std::int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& prompt) {
  auto ids = tokenizer.encode(prompt, /*add_special_tokens=*/true);
  const auto eos = tokenizer.eos_id();
  if (eos && ids.size() > 1 && ids.back() == *eos) ids.pop_back();  // a post-processor's appended EOS
  return ids;
}

std::vector<std::int32_t> end_of_text_ids(const ModelConfig& config, const Tokenizer& tokenizer) {
  std::vector<std::int32_t> ids;
  for (const auto id : config.eos_token_ids) ids.push_back(static_cast<std::int32_t>(id));
  if (const auto eos = tokenizer.eos_id(); eos && std::find(ids.begin(), ids.end(), *eos) == ids.end()) {
    ids.push_back(*eos);
  }
  return ids;
}

}  // namespace svmoe
