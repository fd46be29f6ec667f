#include "svmoe/stages/evaluate.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/token_shards.h"
#include "svmoe/stages/prepare.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {
CausalLM load_model(const fs::path& directory) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  model->eval();
  return model;
}
}  // namespace

// PPL per document: exp(mean NLL) of the document, scored in consecutive windows when it is
// longer than the context; computed here token by token from the logits.
TEST(Evaluate, PerplexityPerDocumentInWindows) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  CausalLM model = load_model(test::model_fixture("llama_mha_untied"));
  const std::int64_t context = 16;
  const SplitMetrics result = evaluate_split(model, dataset, DataSplit::kTest, context, /*max_documents=*/2);
  EXPECT_FALSE(result.routing.has_value());  // a dense model

  std::vector<double> ppl;
  std::int64_t tokens = 0;
  torch::NoGradGuard no_grad;
  for (int d = 0; d < 2; ++d) {
    const TokenShard shard = TokenShard::open(shard_prefix(dataset, d, "test"));
    for (std::uint64_t doc = 0; doc < 2; ++doc) {
      const auto ids = shard.document(doc);
      double nll = 0;
      for (std::size_t begin = 0; begin + 1 < ids.size(); begin += context) {
        const std::size_t end = std::min(begin + context + 1, ids.size());
        std::vector<std::int64_t> window(ids.begin() + static_cast<long>(begin), ids.begin() + static_cast<long>(end));
        const auto input = torch::tensor(window).narrow(0, 0, static_cast<std::int64_t>(window.size()) - 1);
        const auto logits = model->forward(input.unsqueeze(0)).logits[0];
        for (std::size_t i = 0; i + 1 < window.size(); ++i) {
          nll -= torch::log_softmax(logits[static_cast<std::int64_t>(i)], 0)[window[i + 1]].item<double>();
        }
      }
      ppl.push_back(std::exp(nll / static_cast<double>(ids.size() - 1)));
      tokens += static_cast<std::int64_t>(ids.size()) - 1;
    }
  }
  const double mean = (ppl[0] + ppl[1] + ppl[2] + ppl[3]) / 4;
  EXPECT_EQ(result.documents, 4);
  EXPECT_EQ(result.tokens, tokens);
  EXPECT_NEAR(*result.ppl.mean, mean, 1e-3 * mean);
}

// The whole stage on a dense model and an MoE: the files, the table rows, CMR and S_RL within
// their ranges, selection counts that add up.
TEST(Evaluate, WritesTablesAndRawNumbers) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  EvalSettings s;
  s.models = {{"Dense", test::model_fixture("llama_mha_untied"), "-"}, {"BTX", test::tiny_moe(dir.path(), 2, 1), "no"}};
  s.dataset = dataset;
  s.splits = {DataSplit::kValid, DataSplit::kTest};
  s.output = dir / "eval";
  s.context_length = 64;
  s.max_documents = 3;
  const EvalResults results = run_eval(s, RuntimeSettings{});
  for (const char* file : {"results.json", "tables.md", "table_valid.csv", "table_test.csv", "expert_selection.csv"}) {
    EXPECT_TRUE(fs::exists(dir / "eval" / file)) << file;
  }
  const SplitMetrics& moe = results.models[1].splits.at(DataSplit::kTest);
  ASSERT_TRUE(moe.routing.has_value());
  const double cmr1 = *moe.routing->cmr_1.mean;
  EXPECT_GE(cmr1, 1.0);
  EXPECT_LE(cmr1, 2.0);  // 2 experts: ranks 1 .. 2
  EXPECT_GT(*moe.routing->s_rl.mean, 0.0);
  EXPECT_LE(*moe.routing->s_rl.mean, std::log(2.0) + 1e-9);
  std::int64_t choices = 0;
  for (const std::int64_t count : moe.routing->expert_counts[0]) choices += count;
  EXPECT_EQ(choices, moe.tokens);  // top-1: one choice per predicted position
  // results.json reads back as what was written.
  EXPECT_EQ(to_json(read_eval_results(dir / "eval")), to_json(results));
  const std::string tables = read_text_file(dir / "eval" / "tables.md");
  EXPECT_NE(tables.find("## test split (the paper's Table 2)"), std::string::npos) << tables;
  EXPECT_NE(tables.find("## valid split (the paper's Table 5)"), std::string::npos) << tables;
  EXPECT_NE(tables.find("| Dense | - |"), std::string::npos) << tables;
  EXPECT_NE(tables.find("| BTX | no |"), std::string::npos) << tables;
}

TEST(Evaluate, ConfigErrorsNameTheModelEntry) {
  ConfigTree config(default_config());
  config.set("eval.dataset", "d", "test");
  config.set("eval.output", "o", "test");
  EXPECT_NE(test::error_message<ConfigError>([&] { parse_eval_settings(config); }).find("eval.models"),
            std::string::npos);
  config.set("eval.models", Json::array({{{"name", "A"}, {"path", "p"}, {"lb", "maybe"}}}), "exp.yaml");
  EXPECT_NE(test::error_message<ConfigError>([&] { parse_eval_settings(config); }).find("eval.models[0].lb"),
            std::string::npos);
  config.set("eval.models", Json::array({{{"name", "A"}, {"path", "p"}, {"pth", "q"}}}), "exp.yaml");
  EXPECT_NE(test::error_message<ConfigError>([&] { parse_eval_settings(config); }).find("eval.models[0].pth"),
            std::string::npos);
  config.set("eval.models", Json::array({{{"name", "A"}, {"path", "p"}, {"lb", true}}}), "exp.yaml");
  EXPECT_EQ(parse_eval_settings(config).models[0].lb, "yes");
}

// BTM: a mixture of identical experts is that expert; weights follow the TF-IDF similarity.
TEST(Evaluate, BtmEnsembleOfCopiesIsTheModelAndWeightsFollowTfidf) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  const fs::path dense = test::model_fixture("llama_mha_untied");
  CausalLM model = load_model(dense);
  const SplitMetrics single = evaluate_split(model, dataset, DataSplit::kTest, 32, 2);
  BtmSettings btm;
  btm.experts = {dense, dense};
  const SplitMetrics mixed = evaluate_btm_ensemble(btm, dataset, DataSplit::kTest, 32, 2, torch::kCPU);
  EXPECT_EQ(mixed.tokens, single.tokens);
  EXPECT_NEAR(*mixed.ppl.mean, *single.ppl.mean, 1e-4 * *single.ppl.mean);

  // Token 1 only in subdomain 0's row, token 2 in both: a document of token 1 goes to expert 0.
  const auto rows = torch::tensor({{0.0, 0.6, 0.8}, {0.0, 0.0, 1.0}});
  const auto weights =
      btm_weights({{1, 1, 1}, {2, 2}, {0, 0}}, rows, ExpertCoverage::kSubdomains, EnsembleWeighting::kTfidf);
  EXPECT_NEAR(weights[0][0], 1.0, 1e-12);
  EXPECT_NEAR(weights[1][0], 0.8 / 1.8, 1e-6);  // the rows are float32
  EXPECT_NEAR(weights[2][1], 0.5, 1e-12);       // no overlap at all: uniform
  btm.experts = {dense};
  EXPECT_THROW(evaluate_btm_ensemble(btm, dataset, DataSplit::kTest, 32, 1, torch::kCPU), ConfigError);
  // Distance weighting of the same copies: the same mixture; with pairs coverage, one expert per pair.
  btm.experts = {dense, dense};
  btm.weighting = EnsembleWeighting::kDistance;
  const SplitMetrics by_distance = evaluate_btm_ensemble(btm, dataset, DataSplit::kTest, 32, 2, torch::kCPU);
  EXPECT_NEAR(*by_distance.ppl.mean, *single.ppl.mean, 1e-4 * *single.ppl.mean);
  btm.coverage = ExpertCoverage::kPairs;
  const std::string message = test::error_message<ConfigError>(
      [&] { evaluate_btm_ensemble(btm, dataset, DataSplit::kTest, 32, 1, torch::kCPU); });
  EXPECT_NE(message.find("coverage pairs over the dataset's 2 subdomains makes 1"), std::string::npos) << message;
}

}  // namespace svmoe
