#include "svmoe/stages/train_router.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

std::vector<nlohmann::json> metric_lines(const fs::path& metrics, const std::string& key) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto json = nlohmann::json::parse(line);
    if (json.contains(key)) lines.push_back(json);
  }
  return lines;
}

double mean(const nlohmann::json& values) {
  double total = 0;
  for (const auto& v : values) total += v.get<double>();
  return total / static_cast<double>(values.size());
}

// Router loss, top-1 agreement and the targets' entropy of a model on 16 validation windows.
nlohmann::json router_metrics(const fs::path& model_dir, const fs::path& dataset) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(model_dir);
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  model->train();  // the objective gathers its statistics in training mode
  const TfidfTargetTensors tfidf = load_tfidf_targets(dataset);
  RouterSupervisionObjective objective(tfidf.targets, tfidf.has_target, MissingTarget::kMask,
                                       RouterLoss::kSoftCrossEntropy, checkpoint.config.num_hidden_layers);
  WindowSampler valid(dataset_shards(dataset, {}).valid, 32, 1);
  torch::NoGradGuard no_grad;
  for (int b = 0; b < 4; ++b) objective.compute(model, valid.next(4));
  return objective.take_metrics(ProcessGroup()).at("router");
}

TrainSettings router_settings(std::int64_t steps) {
  TrainSettings t;
  t.steps = steps;
  t.micro_batch = 8;
  t.sequence_length = 32;
  t.learning_rate = 1e-2;
  t.warmup_steps = 2;
  t.schedule = LrSchedule::kConstant;
  t.log_every = 5;
  t.eval_every = 0;
  t.save_every = 0;
  return t;
}

}  // namespace

// Stage 3 on the CI corpus (4 subdomains): the router loss falls, the routers' top-1 comes to
// agree with the TF-IDF argmax far more often than at random init, and nothing but the routers
// changes (bit for bit); the optimizer holds state for the routers alone.
TEST(TrainRouter, RoutersLearnTheTfidfTargetsAndNothingElseChanges) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 4);
  const fs::path moe = test::tiny_moe(dir.path(), 4, 2);
  TrainRouterSettings s;
  s.model = moe;
  s.dataset = dataset;
  s.output = dir / "router";
  const TrainResult result = run_train_router(s, router_settings(100), RuntimeSettings{}, TrainingContext{});
  EXPECT_EQ(result.steps, 100);

  // Before and after, on the same validation windows of all subdomains.
  const auto before_training = router_metrics(moe, dataset);
  const auto after_training = router_metrics(s.output / "final", dataset);
  const double floor = after_training["target_entropy"].get<double>();  // the least the loss can reach
  const double first_loss = mean(before_training["router_loss"]), last_loss = mean(after_training["router_loss"]);
  const double first_agreement = mean(before_training["top1_agreement"]);
  const double last_agreement = mean(after_training["top1_agreement"]);
  std::cout << "router loss " << first_loss << " -> " << last_loss << " (targets' entropy " << floor
            << "); top-1 agreement " << first_agreement << " -> " << last_agreement << " (random: 0.25)\n";
  EXPECT_LT(last_loss - floor, 0.8 * (first_loss - floor));
  EXPECT_GT(last_agreement, first_agreement + 0.2);
  EXPECT_EQ(metric_lines(s.output / "metrics.jsonl", "router").size(), 20u);  // every 5 steps
  EXPECT_EQ(metric_lines(s.output / "metrics.jsonl", "valid_router_loss").size(), 1u);

  const HfCheckpoint before = load_hf_checkpoint(moe);
  const HfCheckpoint after = load_hf_checkpoint(s.output / "final");
  std::size_t routers = 0;
  for (const auto& name : before.tensors.names()) {
    const torch::Tensor tensor = before.tensors.tensor(name);
    const torch::Tensor trained = after.tensors.tensor(name);
    if (ends_with(name, "block_sparse_moe.gate.weight")) {
      ++routers;
      EXPECT_FALSE(torch::equal(trained, tensor)) << name;
    } else {
      EXPECT_TRUE(torch::equal(trained, tensor)) << name;
    }
  }
  EXPECT_EQ(routers, 2u);

  const SafetensorsFile optimizer = SafetensorsFile::open(s.output / "checkpoint-100" / "optimizer.safetensors");
  for (const auto& entry : optimizer.entries()) {
    if (entry.name == "step") continue;
    EXPECT_TRUE(ends_with(entry.name, "block_sparse_moe.gate.weight")) << entry.name;
  }
  EXPECT_EQ(optimizer.entries().size(), 1u + 2 * routers);
}

TEST(TrainRouter, RefusesADenseModelAndAMismatchedDataset) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 3);
  TrainRouterSettings s;
  s.model = test::model_fixture("llama_mha_untied");
  s.dataset = dataset;
  s.output = dir / "router";
  EXPECT_NE(test::error_message<ConfigError>([&] {
              run_train_router(s, router_settings(1), RuntimeSettings{}, TrainingContext{});
            }).find("is a dense model"),
            std::string::npos);
  s.model = test::tiny_moe(dir.path(), 2, 1);
  EXPECT_NE(test::error_message<ConfigError>([&] {
              run_train_router(s, router_settings(1), RuntimeSettings{}, TrainingContext{});
            }).find("has 3 subdomains but the MoE"),
            std::string::npos);
}

}  // namespace svmoe
