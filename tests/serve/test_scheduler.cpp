// The model thread: batching requests together gives each the tokens it gets alone; echo's
// log-probs are the log-softmax of the model's logits on the same ids (the log-prob law); a
// cancelled job stops; the queue is bounded; a drained scheduler refuses work.
#include "svmoe/serve/scheduler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "test_support.h"
#include "tiny_models.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;

struct SchedulerTest : ::testing::Test {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  CausalLM model = test::tiny_model(Architecture::kMixtral, tokenizer->vocab_size(), 5, torch::kFloat32);
  ServeLimits limits = [&] {
    ServeLimits l;
    l.model_name = "tiny";
    l.vocab_size = tokenizer->vocab_size();
    l.max_tokens = 64;
    return l;
  }();
  std::shared_ptr<CompletionJob> job(const Json& body, std::uint64_t seed = 0) const {
    return std::make_shared<CompletionJob>(parse_completion_request(body.dump(), limits, *tokenizer), seed);
  }
  static CompletionJob::Snapshot wait(const CompletionJob& job) {
    auto snapshot = job.snapshot();
    while (!snapshot.done) {
      job.wait_for_change(snapshot.version, std::chrono::milliseconds(100));
      snapshot = job.snapshot();
    }
    return snapshot;
  }
};

TEST_F(SchedulerTest, BatchedRequestsGetTheTokensTheyGetAlone) {
  const std::vector<Json> bodies = {
      {{"prompt", "The quick brown fox jumps over"}, {"max_tokens", 9}, {"temperature", 0}},
      {{"prompt", {"Once", "In the beginning was"}}, {"max_tokens", 6}, {"temperature", 0.8}, {"n", 2}, {"seed", 3}},
      {{"prompt", "Hello"}, {"max_tokens", 12}, {"temperature", 1.0}, {"top_k", 20}, {"seed", 11}, {"logprobs", 2}},
  };
  // Alone: one request at a time, a batch of one sequence.
  std::vector<std::vector<std::vector<std::int32_t>>> alone;
  {
    Scheduler scheduler(*model, *tokenizer, {1, 256, {}, true});
    for (const auto& body : bodies) {
      const auto j = job(body);
      ASSERT_EQ(scheduler.submit(j), Scheduler::Admission::kQueued);
      const auto snapshot = wait(*j);
      std::vector<std::vector<std::int32_t>> tokens;
      for (const auto& r : snapshot.results) tokens.push_back(r->generated.tokens);
      alone.push_back(tokens);
    }
  }
  // Together: all queued before the model thread takes its batch of up to 8.
  Scheduler scheduler(*model, *tokenizer, {8, 256, {}, true});
  std::vector<std::shared_ptr<CompletionJob>> jobs;
  for (const auto& body : bodies) jobs.push_back(job(body));
  for (const auto& j : jobs) ASSERT_EQ(scheduler.submit(j), Scheduler::Admission::kQueued);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto snapshot = wait(*jobs[i]);
    ASSERT_TRUE(snapshot.failure.empty()) << snapshot.failure;
    ASSERT_EQ(snapshot.results.size(), alone[i].size());
    for (std::size_t s = 0; s < alone[i].size(); ++s) {
      EXPECT_EQ(snapshot.results[s]->generated.tokens, alone[i][s]) << "request " << i << " sequence " << s;
    }
  }
  EXPECT_LE(scheduler.counts().batches, 3);
  // n = 2 samples differ (seed + sequence index), and the log-probs come one per token.
  const auto sampled = jobs[1]->snapshot();
  EXPECT_NE(sampled.results[0]->generated.tokens, sampled.results[1]->generated.tokens);
  const auto with_logprobs = jobs[2]->snapshot();
  EXPECT_EQ(with_logprobs.results[0]->generated.logprobs.size(), with_logprobs.results[0]->generated.tokens.size());
}

// The log-prob law: echo's log-probs of the prompt are log_softmax of the model's logits on the
// same ids; a generated token's are those of its position.
TEST_F(SchedulerTest, EchoLogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  Scheduler scheduler(*model, *tokenizer, {8, 256, {}, true});
  const auto j = job({{"prompt", "The quick brown fox jumps over the lazy dog"},
                      {"max_tokens", 1},
                      {"echo", true},
                      {"logprobs", 3},
                      {"temperature", 0}});
  ASSERT_EQ(scheduler.submit(j), Scheduler::Admission::kQueued);
  const auto snapshot = wait(*j);
  const auto& result = *snapshot.results[0];
  auto ids = j->request().prompts[0].ids;
  ASSERT_EQ(result.prompt_logprobs.size(), ids.size() - 1);
  ids.push_back(result.generated.tokens[0]);
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end())).view({1, -1}))
                          .logits[0]
                          .to(torch::kFloat64);
  const auto expected = torch::log_softmax(logits, -1);
  for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
    const auto& entry = t + 1 < ids.size() - 1 ? result.prompt_logprobs[t] : result.generated.logprobs[0];
    EXPECT_EQ(entry.token, ids[t + 1]);
    EXPECT_NEAR(entry.logprob, expected[static_cast<std::int64_t>(t)][ids[t + 1]].item<double>(), 1e-5)
        << "position " << t;
    const auto top = std::get<1>(expected[static_cast<std::int64_t>(t)].topk(3));
    for (std::size_t k = 0; k < 3; ++k)
      EXPECT_EQ(entry.top[k].first, top[static_cast<std::int64_t>(k)].item<std::int64_t>());
  }
  // Greedy: the generated token is the most likely one.
  EXPECT_EQ(result.generated.logprobs[0].top[0].first, result.generated.tokens[0]);
}

TEST_F(SchedulerTest, ACancelledJobStopsAtItsNextToken) {
  Scheduler scheduler(*model, *tokenizer, {8, 256, {}, true});
  const auto j = job({{"prompt", "Hello"}, {"max_tokens", 64}, {"temperature", 0}});
  ASSERT_EQ(scheduler.submit(j), Scheduler::Admission::kQueued);
  auto snapshot = j->snapshot();
  while (snapshot.progress[0].tokens.empty()) {
    j->wait_for_change(snapshot.version, std::chrono::milliseconds(100));
    snapshot = j->snapshot();
  }
  j->cancel();
  snapshot = wait(*j);
  EXPECT_EQ(snapshot.results[0]->generated.finish, FinishReason::kCancelled);
  EXPECT_LT(snapshot.results[0]->generated.tokens.size(), 64u);
}

TEST_F(SchedulerTest, TheQueueIsBoundedAndADrainedSchedulerRefusesWork) {
  limits.max_tokens = 100000;
  Scheduler scheduler(*model, *tokenizer, {1, 3, {}, true});
  // A long job holds the model thread (cancelled below); the queue then takes 3 sequences, not 4.
  const auto busy = job({{"prompt", "Hello"}, {"max_tokens", 100000}, {"temperature", 0}});
  ASSERT_EQ(scheduler.submit(busy), Scheduler::Admission::kQueued);
  while (scheduler.counts().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto three = job({{"prompt", {"a", "b", "c"}}, {"max_tokens", 1}});
  EXPECT_EQ(scheduler.submit(three), Scheduler::Admission::kQueued);
  EXPECT_EQ(scheduler.submit(job({{"prompt", "d"}, {"max_tokens", 1}})), Scheduler::Admission::kBusy);
  busy->cancel();
  scheduler.drain();  // finishes what was queued
  EXPECT_TRUE(three->snapshot().done);
  EXPECT_TRUE(busy->snapshot().done);
  EXPECT_EQ(scheduler.submit(job({{"prompt", "e"}, {"max_tokens", 1}})), Scheduler::Admission::kDraining);
}

}  // namespace
}  // namespace svmoe

namespace svmoe {
namespace {

// Every architecture svmoe writes serves a request with everything asked: sampling, log-probs,
// echo and routing (a dense model has none to give).
class SchedulerArchitecture : public ::testing::TestWithParam<Architecture> {};

TEST_P(SchedulerArchitecture, ServesARequestAskingForEverything) {
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  CausalLM model = test::tiny_model(GetParam(), tokenizer->vocab_size(), 8, torch::kFloat32);
  ServeLimits limits;
  limits.model_name = "tiny";
  limits.vocab_size = tokenizer->vocab_size();
  Scheduler scheduler(*model, *tokenizer, {8, 256, {}, is_moe(GetParam())});
  const nlohmann::json body = {{"prompt", {"Once upon a time", "In"}},
                               {"max_tokens", 6},
                               {"temperature", 0.8},
                               {"n", 2},
                               {"echo", true},
                               {"logprobs", 2},
                               {"svmoe_routing", true},
                               {"seed", 1}};
  const auto job = std::make_shared<CompletionJob>(parse_completion_request(body.dump(), limits, *tokenizer), 1);
  ASSERT_EQ(scheduler.submit(job), Scheduler::Admission::kQueued);
  auto snapshot = job->snapshot();
  while (!snapshot.done) {
    job->wait_for_change(snapshot.version, std::chrono::milliseconds(100));
    snapshot = job->snapshot();
  }
  ASSERT_TRUE(snapshot.failure.empty()) << snapshot.failure;
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& result = *snapshot.results[i];
    const auto& prompt = job->request().prompts[i / 2].ids;
    EXPECT_EQ(result.prompt_logprobs.size(), prompt.size() - 1);
    EXPECT_EQ(result.generated.logprobs.size(), result.generated.tokens.size());
    const auto expected_routing = is_moe(GetParam()) ? prompt.size() + result.generated.tokens.size() : 0;
    EXPECT_EQ(result.routing.size(), expected_routing);
    const auto choice = choice_json(job->request(), i, result, *tokenizer, router_names(model->config()));
    EXPECT_EQ(choice["logprobs"]["tokens"].size(), prompt.size() + result.generated.tokens.size());
  }
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, SchedulerArchitecture, ::testing::ValuesIn(kArchitectures),
                         [](const ::testing::TestParamInfo<Architecture>& info) {
                           return std::string(architecture_row(info.param).model_type);
                         });

}  // namespace
}  // namespace svmoe
