#include "svmoe/stages/train_experts.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/experiment_directory.h"
#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/stages/finetune.h"
#include "svmoe/stages/merge.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

// Stage 1 on the example corpus: on each subdomain's validation split, the expert trained on it
// has a lower loss than the other expert (they specialise); a second call
// skips the finished experts; the experts merge into one MoE.
TEST(TrainExperts, ExpertsSpecialiseOnTheirSubdomains) {
  test::ScratchDir dir;
  PrepareSettings prepare;
  prepare.corpus = {test::example_ci_corpus()};
  prepare.tokenizer = test::data_dir() / "tokenizers" / "unigram";
  prepare.output = dir / "dataset";
  prepare.num_subdomains = 2;
  prepare.pinned_categories = {"devicetree"};  // binding descriptions, against the prose of the others
  run_prepare(prepare, RuntimeSettings{}, Json::object());

  TrainSettings t;
  t.steps = 60;
  t.micro_batch = 8;
  t.sequence_length = 32;
  t.learning_rate = 3e-3;
  t.warmup_steps = 4;
  t.eval_every = 0;
  t.save_every = 0;
  // The paper's experts start from one pretrained base: pretrain a tiny one on all subdomains.
  FinetuneSettings base;
  base.model = test::model_fixture("llama_mha_untied");
  base.init = ModelInit::kRandom;
  base.dataset = dir / "dataset";
  base.output = dir / "base";
  run_finetune(base, t, RuntimeSettings{}, TrainingContext{});

  TrainExpertsSettings s;
  s.base_model = dir / "base" / "final";
  s.dataset = dir / "dataset";
  s.output = dir / "experts";
  t.steps = 60;
  t.learning_rate = 2e-3;
  const auto result = run_train_experts(s, t, RuntimeSettings{}, TrainingContext{});
  ASSERT_EQ(result.trained, (std::vector<std::int64_t>{0, 1}));

  double loss[2][2];  // [expert][subdomain]
  for (int e = 0; e < 2; ++e) {
    const HfCheckpoint checkpoint = load_hf_checkpoint(expert_directory(s.output, e));
    CausalLM model(checkpoint.config);
    load_weights(*model, checkpoint);
    for (int d = 0; d < 2; ++d) {
      WindowSampler valid({shard_prefix(s.dataset, d, "valid")}, 32, 9);
      loss[e][d] = evaluate_loss(model, valid, 4, 8);
    }
  }
  // On each subdomain, its own expert is the better one. (Comparing one expert across
  // subdomains would mix in how hard each subdomain is.)
  EXPECT_LT(loss[0][0], loss[1][0]) << "subdomain 0: expert 0 " << loss[0][0] << ", expert 1 " << loss[1][0];
  EXPECT_LT(loss[1][1], loss[0][1]) << "subdomain 1: expert 1 " << loss[1][1] << ", expert 0 " << loss[0][1];
  std::cout << "valid loss [expert][subdomain]: " << loss[0][0] << " " << loss[0][1] << " / " << loss[1][0] << " "
            << loss[1][1] << std::endl;
  EXPECT_TRUE(fs::exists(expert_directory(s.output, 0) / "tokenizer.json"));

  const auto again = run_train_experts(s, t, RuntimeSettings{}, TrainingContext{});
  EXPECT_EQ(again.skipped, (std::vector<std::int64_t>{0, 1}));
  EXPECT_TRUE(again.trained.empty());

  // Monju's coverage: with 2 subdomains, one expert of the pair {0, 1}; on subdomain 1 it beats
  // expert 0, which never saw it. An expert number past the coverage is named.
  TrainExpertsSettings pairs = s;
  pairs.coverage = ExpertCoverage::kPairs;
  pairs.output = dir / "pair_experts";
  EXPECT_EQ(run_train_experts(pairs, t, RuntimeSettings{}, TrainingContext{}).trained, (std::vector<std::int64_t>{0}));
  {
    const HfCheckpoint checkpoint = load_hf_checkpoint(expert_directory(pairs.output, 0));
    CausalLM model(checkpoint.config);
    load_weights(*model, checkpoint);
    WindowSampler valid({shard_prefix(s.dataset, 1, "valid")}, 32, 9);
    EXPECT_LT(evaluate_loss(model, valid, 4, 8), loss[0][1]);
  }
  pairs.experts = {1};
  const std::string message =
      test::error_message<ConfigError>([&] { run_train_experts(pairs, t, RuntimeSettings{}, TrainingContext{}); });
  EXPECT_NE(message.find("coverage pairs over the dataset's 2 subdomains makes 1 experts"), std::string::npos)
      << message;

  // Stage 2 on them: the 2-expert MoE loads, runs and keeps what the experts learnt (its loss
  // is below an untrained model's ln |V|).
  MergeSettings merge;
  merge.experts = {expert_directory(s.output, 0), expert_directory(s.output, 1)};
  merge.output = dir / "moe";
  run_merge(merge, RuntimeSettings{});
  const HfCheckpoint moe_checkpoint = load_hf_checkpoint(dir / "moe");
  CausalLM moe(moe_checkpoint.config);
  load_weights(*moe, moe_checkpoint);
  WindowSampler valid({shard_prefix(s.dataset, 0, "valid")}, 32, 9);
  const double moe_loss = evaluate_loss(moe, valid, 4, 8);
  EXPECT_TRUE(std::isfinite(moe_loss));
  EXPECT_LT(moe_loss, std::log(3000.0));
}

}  // namespace svmoe
