// Incremental decoding (DecodingCache) against the whole-sequence forward, for every
// architecture: the logits of cached steps equal those of one forward over the sequence, and a
// left-padded row computes what it computes alone. Float64, so that only the float32 router
// logits separate the two (their rounding differs with the shapes).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/model/causal_lm.h"
#include "tiny_models.h"

namespace svmoe {

namespace {

CausalLM decoding_model(Architecture architecture) { return test::tiny_model(architecture, 97, 11); }

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

constexpr double kTolerance = 1e-5;  // the logits are O(1); a wrong position or mask gives O(0.1)

}  // namespace

class Decoding : public ::testing::TestWithParam<Architecture> {};

TEST_P(Decoding, CachedStepsGiveTheLogitsOfTheWholeSequence) {
  CausalLM model = decoding_model(GetParam());
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  const auto ids = torch::randint(0, 97, {2, 10}, torch::kInt64);
  const auto reference = model->forward(ids).logits;  // [2, 10, V]

  DecodingCache cache = model->new_cache(2, 10);
  const auto all_valid = [](std::int64_t n) { return torch::ones({2, n}, torch::kBool); };
  // A prompt of 4 positions, then one position a step.
  auto step = model->forward(ids.narrow(1, 0, 4), all_valid(4), cache);
  EXPECT_LT(max_difference(step.logits, reference.narrow(1, 0, 4)), kTolerance);
  for (std::int64_t t = 4; t < 10; ++t) {
    step = model->forward(ids.narrow(1, t, 1), all_valid(1), cache);
    EXPECT_LT(max_difference(step.logits, reference.narrow(1, t, 1)), kTolerance) << "position " << t;
  }
  EXPECT_EQ(cache.length, 10);
  EXPECT_THROW(model->forward(ids.narrow(1, 0, 1), all_valid(1), cache), Error);  // the cache is full
}

TEST_P(Decoding, LeftPaddedRowComputesWhatItComputesAlone) {
  CausalLM model = decoding_model(GetParam());
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  const auto long_row = torch::randint(0, 97, {1, 9}, torch::kInt64);
  const auto short_row = torch::randint(0, 97, {1, 6}, torch::kInt64);
  const auto long_alone = model->forward(long_row).logits;
  const auto short_alone = model->forward(short_row).logits;

  // Prompts of 6 and 3 real tokens (the short one after 3 pads), then 3 steps of one token.
  DecodingCache cache = model->new_cache(2, 9);
  const auto padded = torch::cat(
      {long_row.narrow(1, 0, 6), torch::cat({torch::zeros({1, 3}, torch::kInt64), short_row.narrow(1, 0, 3)}, 1)});
  auto valid = torch::ones({2, 6}, torch::kBool);
  valid.index_put_({1, torch::indexing::Slice(0, 3)}, false);
  auto step = model->forward(padded, valid, cache);
  EXPECT_LT(max_difference(step.logits[0], long_alone[0].narrow(0, 0, 6)), kTolerance);
  EXPECT_LT(max_difference(step.logits[1].narrow(0, 3, 3), short_alone[0].narrow(0, 0, 3)), kTolerance);
  for (std::int64_t t = 0; t < 3; ++t) {
    const auto next = torch::cat({long_row.narrow(1, 6 + t, 1), short_row.narrow(1, 3 + t, 1)});
    step = model->forward(next, torch::ones({2, 1}, torch::kBool), cache);
    EXPECT_LT(max_difference(step.logits[0][0], long_alone[0][6 + t]), kTolerance) << "step " << t;
    EXPECT_LT(max_difference(step.logits[1][0], short_alone[0][3 + t]), kTolerance) << "step " << t;
  }
}

// The routing a step reports is the routing of the same tokens in the whole sequence.
TEST_P(Decoding, StepRoutingIsTheSequenceRouting) {
  if (!is_moe(GetParam())) GTEST_SKIP() << "a dense model has no router";
  CausalLM model = decoding_model(GetParam());
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const auto ids = torch::randint(0, 97, {1, 6}, torch::kInt64);
  const auto whole = token_routing(*model, model->forward(ids).router_logits);
  DecodingCache cache = model->new_cache(1, 6);
  model->forward(ids.narrow(1, 0, 5), torch::ones({1, 5}, torch::kBool), cache);
  const auto last = token_routing(
      *model, model->forward(ids.narrow(1, 5, 1), torch::ones({1, 1}, torch::kBool), cache).router_logits);
  ASSERT_EQ(whole.size(), static_cast<std::size_t>(model->config().num_routers()));
  ASSERT_EQ(last.size(), whole.size());
  EXPECT_EQ(router_names(model->config()).size(), whole.size());
  for (std::size_t r = 0; r < whole.size(); ++r) {
    EXPECT_TRUE(torch::equal(last[r].experts[0], whole[r].experts[5])) << "router " << r;
    EXPECT_LT(max_difference(last[r].weights[0], whole[r].weights[5]), 1e-5) << "router " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, Decoding, ::testing::ValuesIn(kArchitectures),
                         [](const ::testing::TestParamInfo<Architecture>& info) {
                           return std::string(architecture_row(info.param).model_type);
                         });

}  // namespace svmoe
