#include "svmoe/eval/fewshot.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {
std::vector<TrueFalseItem> numbered(const std::string& prefix, int n) {
  std::vector<TrueFalseItem> items;
  for (int i = 0; i < n; ++i) items.push_back({prefix + std::to_string(i), i % 2});
  return items;
}
}  // namespace

TEST(FewShot, ReadsItemsAndNamesTheBadLine) {
  test::ScratchDir dir;
  test::write_text(dir / "ok.jsonl",
                   "{\"statement\": \"A.\", \"label\": 1, \"year\": 2023}\n\n{\"statement\": \"B.\", \"label\": 0}\n");
  const auto items = read_true_false_items(dir / "ok.jsonl");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].statement, "A.");
  EXPECT_EQ(items[1].label, 0);
  test::write_text(dir / "bad.jsonl", "{\"statement\": \"A.\", \"label\": 1}\n{\"statement\": \"B.\", \"label\": 2}\n");
  const std::string message = test::error_message<FormatError>([&] { read_true_false_items(dir / "bad.jsonl"); });
  EXPECT_NE(message.find("bad.jsonl:2"), std::string::npos) << message;
}

TEST(FewShot, PromptsHoldKDistinctSeededShotsThenTheItem) {
  const auto items = numbered("item ", 4);
  auto shots = numbered("shot ", 6);
  shots.push_back({"item 2", 0});  // the same statement as item 2: never its own shot
  FewShotFormat format;
  format.shots = 3;
  format.prompt = "Q: {statement}\nA:";
  format.answers = {" no", " yes"};
  const std::string prompt = few_shot_prompt(items, 2, shots, format);
  EXPECT_EQ(prompt, few_shot_prompt(items, 2, shots, format));  // deterministic
  EXPECT_EQ(prompt.substr(prompt.size() - 12), "Q: item 2\nA:");
  std::set<std::string> used;
  std::size_t at = 0;
  for (int k = 0; k < 3; ++k) {
    const auto begin = prompt.find("Q: shot ", at);
    ASSERT_NE(begin, std::string::npos) << prompt;
    const std::string shot = prompt.substr(begin + 3, 6);
    used.insert(shot);
    const int label = (shot.back() - '0') % 2;  // numbered() labels i % 2
    EXPECT_EQ(prompt.substr(begin + 9, 3 + (label ? 4 : 3)), "\nA:" + std::string(label ? " yes" : " no")) << prompt;
    at = begin + 1;
  }
  EXPECT_EQ(used.size(), 3u);
  EXPECT_EQ(prompt.find("Q: item 2\nA: no"), std::string::npos);
  format.shots = 7;  // 6 usable
  EXPECT_NE(test::error_message<ConfigError>([&] { few_shot_prompt(items, 2, shots, format); }).find("only 6"),
            std::string::npos);
}

// eval.fewshot.draw: once, every item gets the same k shots (none equal to an item); per item,
// the shots differ between items.
TEST(FewShot, ShotsDrawnOnceAreTheSameForEveryItem) {
  const auto items = numbered("item ", 6);
  auto shots = numbered("shot ", 10);
  shots.push_back({"item 3", 1});  // an item's own statement: never drawn once for all
  FewShotFormat format;
  format.shots = 5;
  format.prompt = "Q: {statement}\nA:";
  const auto shots_of = [&](std::size_t index) {
    const std::string prompt = few_shot_prompt(items, index, shots, format);
    return prompt.substr(0, prompt.rfind("Q: item "));
  };
  format.draw = ShotDraw::kOnce;
  const std::string first = shots_of(0);
  for (std::size_t i = 1; i < items.size(); ++i) EXPECT_EQ(shots_of(i), first) << i;
  EXPECT_EQ(first.find("item"), std::string::npos) << first;
  format.seed = 99;
  EXPECT_NE(shots_of(0), first);  // another seed, another set
  format.shots = 11;              // 10 usable: shots equal to an item are left out
  EXPECT_NE(test::error_message<ConfigError>([&] { few_shot_prompt(items, 0, shots, format); }).find("only 10"),
            std::string::npos);

  format.shots = 5;
  format.seed = 1234;
  format.draw = ShotDraw::kPerItem;
  std::set<std::string> sets;
  for (std::size_t i = 0; i < items.size(); ++i) sets.insert(shots_of(i));
  EXPECT_GT(sets.size(), 1u);
}

// The answer's log-likelihood, computed here from the logits of context + answer.
TEST(FewShot, ContinuationLogLikelihoodSumsTheAnswersTokens) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  model->eval();
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  const std::string context = "The kernel schedules tasks.\nAnswer:";
  const std::string answer = " yes indeed";
  const double ll = continuation_log_likelihood(model, *tokenizer, context, answer, 1024);
  const auto context_ids = tokenizer->encode(context, true);
  const auto whole = tokenizer->encode(context + answer, true);
  ASSERT_TRUE(std::equal(context_ids.begin(), context_ids.end(), whole.begin()));
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> ids(whole.begin(), whole.end());
  const auto logits =
      model->forward(torch::tensor(ids).narrow(0, 0, static_cast<std::int64_t>(ids.size()) - 1).unsqueeze(0)).logits[0];
  double expected = 0;
  for (std::size_t i = context_ids.size(); i < ids.size(); ++i) {
    expected += torch::log_softmax(logits[static_cast<std::int64_t>(i) - 1], 0)[ids[i]].item<double>();
  }
  EXPECT_NEAR(ll, expected, 1e-4);
  EXPECT_LT(ll, 0.0);
  // A context longer than the model's window is cut from the left, the answer kept whole.
  const double cut = continuation_log_likelihood(model, *tokenizer, "padding words " + context, answer, 8);
  EXPECT_TRUE(std::isfinite(cut));
  EXPECT_LT(cut, 0.0);
}

TEST(FewShot, AccuracyCountsTheHigherLikelihoodAnswer) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  const auto items = numbered("The driver registers device ", 6);
  const auto shots = numbered("The module exports symbol ", 5);
  FewShotFormat format;
  format.shots = 2;
  format.prompt = "{statement}\nTrue or false?";
  format.answers = {" false", " true"};
  const auto result = evaluate_true_false(model, *tokenizer, items, shots, format);
  EXPECT_EQ(result.items, 6);
  int correct = 0, correct_norm = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& p = result.predictions[i];
    const double ll0 = p.log_likelihoods[0], ll1 = p.log_likelihoods[1];
    correct += (ll1 > ll0 ? 1 : 0) == items[i].label ? 1 : 0;
    correct_norm += (ll1 / 5 > ll0 / 6 ? 1 : 0) == items[i].label ? 1 : 0;  // " true" 5 characters, " false" 6
  }
  EXPECT_DOUBLE_EQ(result.acc, correct / 6.0);
  EXPECT_DOUBLE_EQ(result.acc_norm, correct_norm / 6.0);
}

}  // namespace svmoe
