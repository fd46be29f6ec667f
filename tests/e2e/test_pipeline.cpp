// The whole recipe through the real executable on the CI slice of the example corpus, as a user
// runs it: prepare, a tiny base model, two experts, merge, train-router, finetune (BTX and SvMoE),
// eval and report; every stage's output is what the next one reads.
#include <gtest/gtest.h>

#include <fstream>

#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

TEST(E2EPipeline, AllStagesFromCorpusToReport) {
  test::ScratchDir dir;
  const fs::path root = dir.path();
  const std::string config = (root / "experiment.yaml").string();
  test::write_text(
      config,
      "runtime: {threads: 2}\n"
      "prepare:\n  corpus: " +
          test::example_ci_corpus().string() + "\n  tokenizer: " +
          (test::data_dir() / "tokenizers" / "unigram").string() + "\n  output: " + (root / "dataset").string() +
          "\n  num_subdomains: 2\n"
          "train: {micro_batch: 4, sequence_length: 32, learning_rate: 3.0e-3, warmup_steps: 2, "
          "log_every: 5, eval_every: 0, eval_batches: 2, save_every: 0}\n"
          "finetune:\n  model: " +
          test::model_fixture("llama_mha_untied").string() +
          "\n  init: random\n  dataset: " + (root / "dataset").string() + "\n  output: " + (root / "base").string() +
          "\n  train: {steps: 20}\n"
          "train_experts:\n  base_model: " +
          (root / "base" / "final").string() + "\n  dataset: " + (root / "dataset").string() +
          "\n  output: " + (root / "experts").string() +
          "\n  train: {steps: 10}\n"
          "merge:\n  experts: [" +
          (root / "experts" / "expert_0").string() + ", " + (root / "experts" / "expert_1").string() +
          "]\n  output: " + (root / "moe").string() +
          "\n  num_experts_per_tok: 1\n"
          "train_router:\n  model: " +
          (root / "moe").string() + "\n  dataset: " + (root / "dataset").string() +
          "\n  output: " + (root / "router").string() +
          "\n  train: {steps: 20, learning_rate: 1.0e-2}\n"
          "eval:\n  models:\n    - {name: BTX, path: " +
          (root / "btx" / "final").string() +
          ", lb: \"yes\"}\n    - {name: SvMoE, path: " + (root / "svmoe" / "final").string() +
          ", lb: \"no\"}\n  dataset: " + (root / "dataset").string() + "\n  output: " + (root / "eval").string() +
          "\n  context_length: 64\n  max_documents: 3\n"
          "  btm: {experts: [" +
          (root / "experts" / "expert_0").string() + ", " + (root / "experts" / "expert_1").string() +
          "]}\n"
          "report:\n  runs:\n    - {name: BTX, path: " +
          (root / "btx").string() + "}\n    - {name: SvMoE, path: " + (root / "svmoe").string() +
          "}\n  text: \"The device tree describes the hardware.\"\n");
  const std::string c = "-c '" + config + "' ";
  const std::vector<std::string> commands = {
      "prepare " + c,
      "finetune " + c,
      "train-experts " + c,
      "merge " + c,
      "train-router " + c,
      "finetune " + c + "--model '" + (root / "moe").string() + "' --output '" + (root / "btx").string() +
          "' --steps 10 --set finetune.init=pretrained --set finetune.load_balancing.method=switch",
      "finetune " + c + "--model '" + (root / "router" / "final").string() + "' --output '" +
          (root / "svmoe").string() + "' --steps 10 --set finetune.init=pretrained",
      "eval " + c,
      "report " + c,
  };
  for (const auto& command : commands) {
    const auto result = test::run_svmoe(command + " --log-level warn");
    ASSERT_EQ(result.exit_code, 0) << "svmoe " << command << "\n" << result.output;
  }
  const std::string tables = read_text_file(root / "eval" / "tables.md");
  for (const char* row : {"| BTX | yes |", "| SvMoE | no |", "| BTM ensemble | - |"}) {
    EXPECT_NE(tables.find(row), std::string::npos) << row << "\n" << tables;
  }
  const std::string report = read_text_file(root / "eval" / "report.html");
  EXPECT_NE(report.find("Routed text"), std::string::npos);
  EXPECT_NE(report.find("<polyline"), std::string::npos);
  // The lb line in the switch run's metrics, routing health in both.
  std::ifstream metrics(root / "btx" / "metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) {
    if (line.find("\"routing\"") != std::string::npos) last = line;
  }
  EXPECT_NE(last.find("\"lb_loss\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"expert_fraction\""), std::string::npos) << last;
}

}  // namespace svmoe
