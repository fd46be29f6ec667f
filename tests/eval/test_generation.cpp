// Generation: greedy (and seeded sampling) with the KV cache gives the tokens of recomputing the
// whole sequence every step, for every architecture and for a batch of prompts of different
// lengths; the sampler follows its definition (eval/generation.h); stop strings cut the text.
#include "svmoe/eval/generation.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "test_support.h"
#include "tiny_models.h"

namespace svmoe {

namespace {

std::unique_ptr<Tokenizer> fixture_tokenizer() { return load_tokenizer(test::data_dir() / "tokenizers" / "unigram"); }

std::vector<GenerationRequest> requests_for(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                            std::int64_t max_new_tokens, const SamplingOptions& sampling = {}) {
  std::vector<GenerationRequest> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = encode_prompt(tokenizer, prompts[i]);
    request.max_new_tokens = max_new_tokens;
    request.sampling = sampling;
    request.sampling.seed += i;
    requests.push_back(request);
  }
  return requests;
}

const std::vector<std::string> kPrompts = {"The quick brown fox jumps over the lazy dog and", "Once upon a time", "In"};

}  // namespace

class Generation : public ::testing::TestWithParam<Architecture> {};

// The law: the cache changes the speed, never the tokens.
TEST_P(Generation, CacheGivesTheTokensOfRecomputing) {
  const auto tokenizer = fixture_tokenizer();
  CausalLM model = test::tiny_model(GetParam(), tokenizer->vocab_size(), 21);
  for (const bool sampled : {false, true}) {
    SamplingOptions sampling;
    if (sampled) sampling = {1.0, 50, 0.9, 1.1, 7};
    const auto requests = requests_for(*tokenizer, kPrompts, 16, sampling);
    ASSERT_NE(requests[0].prompt.size(), requests[2].prompt.size());  // the batch is padded
    const auto cached = generate(*model, tokenizer.get(), requests, {true, {}, {}});
    const auto recomputed = generate(*model, tokenizer.get(), requests, {false, {}, {}});
    ASSERT_EQ(cached.size(), kPrompts.size());
    for (std::size_t i = 0; i < cached.size(); ++i) {
      EXPECT_EQ(cached[i].tokens, recomputed[i].tokens) << "prompt " << i << (sampled ? " sampled" : " greedy");
      EXPECT_EQ(cached[i].text, recomputed[i].text);
      EXPECT_EQ(cached[i].tokens.size(), 16u);  // no end-of-text id was given
      EXPECT_EQ(cached[i].finish, FinishReason::kLength);
    }
    // A prompt alone gives what it gives in the batch (its seed is its own).
    const auto alone = generate(*model, tokenizer.get(), {requests[2]}, {true, {}, {}});
    EXPECT_EQ(alone[0].tokens, cached[2].tokens);
  }
}

TEST_P(Generation, RoutingOfTokensNamesEachRoutersTopK) {
  if (!is_moe(GetParam())) GTEST_SKIP() << "a dense model has no router";
  const auto tokenizer = fixture_tokenizer();
  CausalLM model = test::tiny_model(GetParam(), tokenizer->vocab_size(), 21);
  const auto ids = encode_prompt(*tokenizer, kPrompts[0]);
  const auto routing = routing_of_tokens(*model, ids, 2);
  ASSERT_EQ(routing.size(), ids.size() - 2);
  for (const auto& token : routing) {
    ASSERT_EQ(static_cast<std::int64_t>(token.size()), model->config().num_routers());
    for (const auto& choice : token) {
      ASSERT_EQ(choice.experts.size(), 2u);
      EXPECT_NE(choice.experts[0], choice.experts[1]);
      EXPECT_GE(choice.weights[0], choice.weights[1]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, Generation, ::testing::ValuesIn(kArchitectures),
                         [](const ::testing::TestParamInfo<Architecture>& info) {
                           return std::string(architecture_row(info.param).model_type);
                         });

TEST(Generation, StopsAtAStopStringAndAtEndOfText) {
  const auto tokenizer = fixture_tokenizer();
  CausalLM model = test::tiny_model(Architecture::kMixtral, tokenizer->vocab_size(), 21);
  auto requests = requests_for(*tokenizer, {kPrompts[1]}, 24);
  const auto free = generate(*model, tokenizer.get(), requests, {true, {}, {}});
  const std::string& text = free[0].text;
  ASSERT_GT(text.size(), 8u) << text;
  const std::string stop = text.substr(text.size() / 2, 3);
  requests[0].stop = {"never in the text \x01", stop};
  const auto stopped = generate(*model, tokenizer.get(), requests, {true, {}, {}});
  EXPECT_EQ(stopped[0].text, text.substr(0, text.find(stop)));
  EXPECT_EQ(stopped[0].finish, FinishReason::kStop);
  EXPECT_LT(stopped[0].tokens.size(), free[0].tokens.size());
  // The third generated id as end-of-text: generation ends with it.
  const auto ended =
      generate(*model, tokenizer.get(), requests_for(*tokenizer, {kPrompts[1]}, 24), {true, {free[0].tokens[2]}, {}});
  EXPECT_EQ(ended[0].finish, FinishReason::kStop);
  EXPECT_EQ(ended[0].tokens.size(), 3u);
}

TEST(TokenSampler, GreedyTakesTheFirstLargest) {
  TokenSampler greedy({});
  EXPECT_EQ(greedy.next({0.1, 2.0, -1.0, 2.0}, {}), 1);
}

TEST(TokenSampler, TopKOfOneAndATinyTopPAreGreedy) {
  const std::vector<double> logits = {0.3, 1.2, 1.1, -0.5};
  TokenSampler top_k({1.0, 1, 1.0, 1.0, 3});
  TokenSampler top_p({1.0, 0, 1e-9, 1.0, 3});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(top_k.next(logits, {}), 1);
    EXPECT_EQ(top_p.next(logits, {}), 1);
  }
}

TEST(TokenSampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  TokenSampler sampler({0.0, 0, 1.0, 1.25, 0});
  EXPECT_EQ(sampler.next({2.0, 1.9}, {0}), 1);       // 2.0 / 1.25 = 1.6 < 1.9
  EXPECT_EQ(sampler.next({-1.0, -1.1}, {0, 0}), 1);  // -1.0 * 1.25 = -1.25 < -1.1
  EXPECT_EQ(sampler.next({2.0, 1.9}, {1}), 0);       // the other one is penalised
}

// Draw frequencies follow softmax(l / T), truncated by top-p, within a few standard errors.
TEST(TokenSampler, DrawsFollowTheDistribution) {
  const std::vector<double> logits = {std::log(0.5), std::log(0.3), std::log(0.2)};
  const int draws = 20000;
  const auto frequencies = [&](const SamplingOptions& options) {
    TokenSampler sampler(options);
    std::vector<double> counts(3, 0.0);
    for (int i = 0; i < draws; ++i) counts[static_cast<std::size_t>(sampler.next(logits, {}))] += 1.0 / draws;
    return counts;
  };
  const auto plain = frequencies({1.0, 0, 1.0, 1.0, 1});
  EXPECT_NEAR(plain[0], 0.5, 0.015);
  EXPECT_NEAR(plain[1], 0.3, 0.015);
  EXPECT_NEAR(plain[2], 0.2, 0.015);
  const auto nucleus = frequencies({1.0, 0, 0.75, 1.0, 2});  // keeps 0.5 + 0.3: renormalised 5/8, 3/8
  EXPECT_NEAR(nucleus[0], 0.625, 0.015);
  EXPECT_EQ(nucleus[2], 0.0);
  const auto hot = frequencies({2.0, 0, 1.0, 1.0, 3});  // p^(1/2), renormalised
  const double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.2);
  EXPECT_NEAR(hot[2], std::sqrt(0.2) / z, 0.015);
  // The same seed draws the same sequence.
  EXPECT_EQ(frequencies({1.0, 0, 1.0, 1.0, 9}), frequencies({1.0, 0, 1.0, 1.0, 9}));
}

}  // namespace svmoe
