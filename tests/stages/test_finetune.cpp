#include "svmoe/stages/finetune.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

TrainSettings moe_settings(std::int64_t steps) {
  TrainSettings t;
  t.steps = steps;
  t.micro_batch = 8;
  t.sequence_length = 32;
  t.learning_rate = 3e-3;
  t.warmup_steps = 2;
  t.log_every = 10;
  t.eval_every = 0;
  t.save_every = 0;
  return t;
}

// Load imbalance of the routing in the run's last `lines` logging intervals: per layer, the
// largest minus the smallest expert fraction, averaged over layers and intervals.
double load_spread(const fs::path& metrics, std::size_t lines) {
  std::vector<nlohmann::json> routing;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto json = nlohmann::json::parse(line);
    if (json.contains("routing")) routing.push_back(json["routing"]);
  }
  double total = 0;
  std::size_t n = 0;
  for (std::size_t i = routing.size() - lines; i < routing.size(); ++i) {
    for (const auto& layer : routing[i]["expert_fraction"]) {
      double lo = 1, hi = 0;
      for (const auto& f : layer) {
        lo = std::min(lo, f.get<double>());
        hi = std::max(hi, f.get<double>());
      }
      total += hi - lo;
      ++n;
    }
  }
  return total / static_cast<double>(n);
}

}  // namespace

// Stage 4 on an MoE: switch gives more even expert loads than none, and aux_free evens them
// without a loss term (its LB loss is only logged); the aux_free bias is saved with the model.
TEST(Finetune, LoadBalancingEvensTheExpertLoads) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 4);
  const fs::path moe = test::tiny_moe(dir.path(), 4, 1);
  std::map<std::string, double> spread;
  for (const std::string method : {"none", "switch", "aux_free"}) {
    FinetuneSettings f;
    f.model = moe;
    f.dataset = dataset;
    f.output = dir / method;
    f.load_balancing.method = *enum_from_name<LoadBalancingMethod>(method);
    f.load_balancing.alpha = 0.1;
    f.load_balancing.aux_free_rate = 0.01;
    run_finetune(f, moe_settings(60), RuntimeSettings{}, TrainingContext{});
    spread[method] = load_spread(f.output / "metrics.jsonl", 3);
  }
  std::cout << "max - min expert fraction (4 experts, top-1), last 30 steps: none " << spread["none"] << ", switch "
            << spread["switch"] << ", aux_free " << spread["aux_free"] << "\n";
  EXPECT_LT(spread["switch"], spread["none"]);
  EXPECT_LT(spread["aux_free"], spread["none"]);
  // The checkpoint records the LB coefficient it trained with; without the switch loss, the input's.
  const auto coefficient = [&](const fs::path& model) {
    return nlohmann::json::parse(read_text_file(model / "config.json")).at("router_aux_loss_coef").get<double>();
  };
  EXPECT_DOUBLE_EQ(coefficient(dir / "switch" / "final"), 0.1);
  EXPECT_DOUBLE_EQ(coefficient(dir / "none" / "final"), coefficient(moe));
  EXPECT_DOUBLE_EQ(coefficient(dir / "aux_free" / "final"), coefficient(moe));

  const HfCheckpoint trained = load_hf_checkpoint(dir / "aux_free" / "final");
  CausalLM model(trained.config);
  load_weights(*model, trained);
  const auto bias = model->model->layers[0]->as<DecoderLayerImpl>()->block_sparse_moe->selection_bias;
  EXPECT_GT(bias.abs().sum().item<double>(), 0.0);  // restored from svmoe_state.safetensors
}

TEST(Finetune, AWeightedMixNeedsOneWeightPerSubdomain) {
  ConfigTree config(default_config());
  config.set("finetune.model", "m", "test");
  config.set("finetune.dataset", "d", "test");
  config.set("finetune.output", "o", "test");
  config.set("finetune.subdomains", Json::array({0, 2}), "test");
  config.set("finetune.subdomain_weights", Json::array({1.0}), "test");
  EXPECT_NE(test::error_message<ConfigError>([&] { parse_finetune_settings(config); }).find("1 weights for 2"),
            std::string::npos);
  config.set("finetune.subdomain_weights", Json::array({1.0, -2}), "test");
  EXPECT_NE(test::error_message<ConfigError>([&] { parse_finetune_settings(config); }).find("positive"),
            std::string::npos);
  config.set("finetune.subdomain_weights", Json::array({1.0, 3}), "test");
  EXPECT_EQ(parse_finetune_settings(config).subdomain_weights, (std::vector<double>{1.0, 3.0}));
}

}  // namespace svmoe
