#include "svmoe/train/objectives.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/train/distributed.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {

CausalLM load_model(const std::string& fixture) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture(fixture));
  CausalLM model(checkpoint.config);
  load_weights(*model, checkpoint);
  return model;
}

torch::Tensor random_batch(std::int64_t vocab, std::int64_t batch, std::int64_t length, std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(vocab, {batch, length + 1}, torch::kInt64);
}

}  // namespace

TEST(LanguageModelObjective, DenseIsTheNextTokenLoss) {
  CausalLM model = load_model("llama_mha_untied");
  const auto batch = random_batch(3000, 2, 9, 1);
  LanguageModelObjective objective(model->config(), {});
  const ObjectiveTerms terms = objective.compute(model, batch);
  const auto logits = model->forward(batch.narrow(1, 0, 9)).logits;
  const auto expected =
      torch::nn::functional::cross_entropy(logits.reshape({-1, 3000}), batch.narrow(1, 1, 9).reshape({-1}));
  EXPECT_NEAR(terms.loss.item<double>(), expected.item<double>(), 1e-6);
  EXPECT_EQ(terms.parts.count("lb_loss"), 0u);
  EXPECT_TRUE(objective.take_metrics(ProcessGroup()).empty());

  LoadBalancingSettings lb;
  lb.method = LoadBalancingMethod::kSwitch;
  EXPECT_NE(
      test::error_message<ConfigError>([&] { LanguageModelObjective(model->config(), lb); }).find("has no routers"),
      std::string::npos);
  // A soft MoE has routers but no top-k choice to balance.
  ModelConfig soft = model->config();
  soft.architecture = Architecture::kSoftMoe;
  soft.num_local_experts = 4;
  soft.num_experts_per_tok = 2;
  EXPECT_NE(test::error_message<ConfigError>([&] { LanguageModelObjective(soft, lb); }).find("svmoe_soft_moe model"),
            std::string::npos);
  EXPECT_NO_THROW(LanguageModelObjective(soft, LoadBalancingSettings{}));
}

// The loss applies the LM head chunk by chunk (train/cross_entropy.h); the gradients of every
// parameter equal those of the plain loss on the whole logits, with tied embeddings too (the
// head's gradient and the embedding's add up in one tensor).
TEST(LanguageModelObjective, GradientsEqualThoseOfThePlainLossWithTiedEmbeddings) {
  CausalLM model = load_model("llama_gqa_tied_theta5e5");
  ASSERT_TRUE(model->config().tie_word_embeddings);
  const auto batch = random_batch(model->config().vocab_size, 2, 7, 2);
  LanguageModelObjective objective(model->config(), {});
  objective.compute(model, batch).loss.backward();
  std::vector<torch::Tensor> fused;
  for (const auto& p : model->parameters()) fused.push_back(p.grad().clone());
  model->zero_grad();
  const auto logits = model->forward(batch.narrow(1, 0, 7)).logits;
  torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.narrow(1, 1, 7).reshape({-1}))
      .backward();
  const auto parameters = model->parameters();
  ASSERT_EQ(parameters.size(), fused.size());
  for (std::size_t i = 0; i < fused.size(); ++i)
    EXPECT_TRUE(torch::allclose(fused[i], parameters[i].grad(), 1e-4, 1e-6)) << i;
}

TEST(LanguageModelObjective, SwitchAddsAlphaTimesTheLoadBalancingLoss) {
  CausalLM model = load_model("mixtral_8e_top2");
  const auto batch = random_batch(3000, 2, 12, 2);
  LoadBalancingSettings lb;
  lb.method = LoadBalancingMethod::kSwitch;
  lb.alpha = 0.25;
  LanguageModelObjective objective(model->config(), lb);
  const ObjectiveTerms terms = objective.compute(model, batch);
  const auto out = model->forward(batch.narrow(1, 0, 12));
  const double lb_loss = switch_load_balancing_loss(out.router_logits, 2).item<double>();
  EXPECT_NEAR(terms.parts.at("lb_loss").item<double>(), lb_loss, 1e-6);
  EXPECT_NEAR(terms.loss.item<double>(), terms.parts.at("lm_loss").item<double>() + 0.25 * lb_loss, 1e-5);

  LanguageModelObjective none(model->config(), {});
  const ObjectiveTerms plain = none.compute(model, batch);
  EXPECT_NEAR(plain.loss.item<double>(), plain.parts.at("lm_loss").item<double>(), 1e-7);
  EXPECT_NEAR(plain.parts.at("lb_loss").item<double>(), lb_loss, 1e-6);  // logged all the same
}

TEST(LanguageModelObjective, RoutingHealthCountsEveryChoice) {
  CausalLM model = load_model("mixtral_8e_top2");
  model->train();
  LanguageModelObjective objective(model->config(), {});
  objective.compute(model, random_batch(3000, 2, 10, 3));
  objective.compute(model, random_batch(3000, 1, 10, 4));
  const auto metrics = objective.take_metrics(ProcessGroup());
  const auto& routing = metrics.at("routing");
  ASSERT_EQ(routing["expert_fraction"].size(), 2u);
  for (const auto& layer : routing["expert_fraction"]) {
    double total = 0;
    for (const auto& f : layer) total += f.get<double>();
    EXPECT_NEAR(total, 1.0, 1e-9);
  }
  for (const auto& h : routing["router_entropy"]) {
    EXPECT_GT(h.get<double>(), 0.0);
    EXPECT_LE(h.get<double>(), std::log(8.0) + 1e-6);
  }
  EXPECT_TRUE(objective.take_metrics(ProcessGroup())["routing"]["router_entropy"][0] == 0.0);  // reset
}

TEST(LanguageModelObjective, AuxFreeNudgesTheBiasTowardEqualLoad) {
  CausalLM model = load_model("mixtral_4e_top1_gqa");
  model->train();
  LoadBalancingSettings lb;
  lb.method = LoadBalancingMethod::kAuxFree;
  lb.aux_free_rate = 0.01;
  LanguageModelObjective objective(model->config(), lb);
  objective.compute(model, random_batch(3000, 4, 16, 5));
  // The step's loads, computed apart.
  std::vector<torch::Tensor> loads;
  {
    torch::NoGradGuard no_grad;
    for (const auto& logits : model->forward(random_batch(3000, 4, 16, 5).narrow(1, 0, 16)).router_logits) {
      loads.push_back(expert_load(route_top_k(logits, 1), 4).to(torch::kFloat32));
    }
  }
  objective.after_step(model, ProcessGroup());
  for (std::size_t l = 0; l < loads.size(); ++l) {
    const auto bias = model->model->layers[l]->as<DecoderLayerImpl>()->block_sparse_moe->selection_bias;
    const auto expected = torch::sign(loads[l].mean() - loads[l]) * 0.01;
    EXPECT_TRUE(torch::allclose(bias, expected)) << l << "\n" << bias << "\n" << loads[l];
  }
}

// L_SvMoE computed token by token, written apart from the objective (SPEC.md §4, stage 3).
TEST(RouterSupervisionObjective, EqualsTheDefinitionTokenByToken) {
  CausalLM model = load_model("mixtral_8e_top2");
  model->train();
  const std::int64_t vocab = 3000, experts = 8;
  torch::manual_seed(9);
  auto targets = torch::softmax(torch::randn({vocab, experts}) * 2, -1);
  auto has_target = torch::rand({vocab}) > 0.3;
  const auto batch = random_batch(vocab, 2, 7, 6);
  const auto input = batch.narrow(1, 0, 7);
  std::vector<torch::Tensor> router_logits;
  {
    torch::NoGradGuard no_grad;
    model->model->forward(input, router_logits);
  }
  for (const MissingTarget missing : {MissingTarget::kMask, MissingTarget::kUniform}) {
    RouterSupervisionObjective objective(targets, has_target, missing, RouterLoss::kSoftCrossEntropy, 2);
    const ObjectiveTerms terms = objective.compute(model, batch);
    double sum = 0, agree = 0;
    std::int64_t counted = 0;
    for (std::int64_t l = 0; l < 2; ++l) {
      double layer_sum = 0;
      std::int64_t layer_count = 0;
      for (std::int64_t i = 0; i < input.numel(); ++i) {
        const auto token = input.reshape({-1})[i].item<std::int64_t>();
        const bool targeted = has_target[token].item<bool>();
        if (!targeted && missing == MissingTarget::kMask) continue;
        const auto logits = router_logits[l][i];
        const auto log_p = logits - logits.exp().sum().log();
        double ce = 0;
        for (std::int64_t n = 0; n < experts; ++n) {
          const double t = targeted ? targets[token][n].item<double>() : 1.0 / experts;
          ce -= t * log_p[n].item<double>();
        }
        layer_sum += ce;
        ++layer_count;
        agree += logits.argmax().item<std::int64_t>() == (targeted ? targets[token].argmax().item<std::int64_t>() : 0)
                     ? 1
                     : 0;
      }
      sum += layer_sum / layer_count;
      counted = layer_count;
    }
    EXPECT_NEAR(terms.loss.item<double>(), sum, 1e-5) << enum_name(missing);
    EXPECT_NEAR(terms.parts.at("router_loss").item<double>(), sum / 2, 1e-5) << enum_name(missing);
    const auto metrics = objective.take_metrics(ProcessGroup()).at("router");
    EXPECT_EQ(metrics["targeted_tokens"].get<double>(), static_cast<double>(counted)) << enum_name(missing);
    const double agreement = metrics["top1_agreement"][0].get<double>() + metrics["top1_agreement"][1].get<double>();
    EXPECT_NEAR(agreement, agree / counted, 1e-9) << enum_name(missing);
  }
}

TEST(RouterSupervisionObjective, GradientsReachTheRouters) {
  CausalLM model = load_model("mixtral_8e_top2");
  model->train();
  const auto targets = torch::softmax(torch::randn({3000, 8}), -1);
  RouterSupervisionObjective objective(targets, torch::ones({3000}, torch::kBool), MissingTarget::kMask,
                                       RouterLoss::kSoftCrossEntropy, 2);
  objective.compute(model, random_batch(3000, 2, 6, 7)).loss.backward();
  for (const auto& item : model->named_parameters()) {
    if (item.key().find("block_sparse_moe.gate") != std::string::npos) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
    }
    if (item.key() == "lm_head.weight") {
      EXPECT_FALSE(item.value().grad().defined());  // no LM head
    }
  }
}

// Both readings of l_CE(softmax(RL), T) for one token, by hand (SPEC.md §4, stage 3), value and
// gradient: RL = (1, 0, -1), T = (0.5, 0.3, 0.2).
//   p = softmax(RL) = e^(1, 0, -1) / Z, Z = e + 1 + 1/e
//   soft_cross_entropy:         L = -sum T_n log p_n = log Z - sum T_n RL_n,   dL/dRL = p - T
//   softmax_then_cross_entropy: L = -sum T_n log q_n, q = softmax(p),
//                               dL/dp = q - T, dL/dRL_j = p_j ((q - T)_j - sum_n p_n (q - T)_n)
TEST(RouterCrossEntropy, BothReadingsEqualTheirHandComputation) {
  const double rl[3] = {1.0, 0.0, -1.0}, t[3] = {0.5, 0.3, 0.2};
  const double z = std::exp(1.0) + 1.0 + std::exp(-1.0);
  double p[3], q[3];
  for (int n = 0; n < 3; ++n) p[n] = std::exp(rl[n]) / z;
  const double zq = std::exp(p[0]) + std::exp(p[1]) + std::exp(p[2]);
  for (int n = 0; n < 3; ++n) q[n] = std::exp(p[n]) / zq;

  double soft = std::log(z), literal = 0, soft_grad[3], literal_grad[3], mean = 0;
  for (int n = 0; n < 3; ++n) {
    soft -= t[n] * rl[n];
    literal -= t[n] * std::log(q[n]);
    soft_grad[n] = p[n] - t[n];
    mean += p[n] * (q[n] - t[n]);
  }
  for (int n = 0; n < 3; ++n) literal_grad[n] = p[n] * ((q[n] - t[n]) - mean);

  const auto targets = torch::tensor({0.5f, 0.3f, 0.2f}).reshape({1, 3});
  for (const RouterLoss loss : enum_values<RouterLoss>()) {
    auto logits = torch::tensor({1.0f, 0.0f, -1.0f}).reshape({1, 3}).requires_grad_(true);
    const auto value = router_cross_entropy(logits, targets, loss);
    ASSERT_EQ(value.sizes(), torch::IntArrayRef({1}));
    value.sum().backward();
    const bool literal_reading = loss == RouterLoss::kSoftmaxThenCrossEntropy;
    EXPECT_NEAR(value.item<double>(), literal_reading ? literal : soft, 1e-6) << enum_name(loss);
    for (int n = 0; n < 3; ++n) {
      EXPECT_NEAR(logits.grad()[0][n].item<double>(), literal_reading ? literal_grad[n] : soft_grad[n], 1e-6)
          << enum_name(loss) << " n=" << n;
    }
  }
}

// What the two readings reward, on one token by gradient descent on free logits: the soft
// cross-entropy's minimum is the teacher (the router's entropy falls to the teacher's, not
// below); the literal reading's moves the mass to the teacher's largest entry (far below).
TEST(RouterCrossEntropy, OnlyTheLiteralReadingIsMoreConfidentThanItsTeacher) {
  const auto teacher = torch::tensor({0.30f, 0.20f, 0.15f, 0.10f, 0.10f, 0.05f, 0.05f, 0.05f}).reshape({1, 8});
  const double teacher_entropy = -(teacher * teacher.log()).sum().item<double>();
  for (const RouterLoss loss : enum_values<RouterLoss>()) {
    auto logits = torch::zeros({1, 8}).requires_grad_(true);
    torch::optim::SGD sgd({logits}, torch::optim::SGDOptions(loss == RouterLoss::kSoftCrossEntropy ? 1.0 : 50.0));
    for (int step = 0; step < 3000; ++step) {
      sgd.zero_grad();
      router_cross_entropy(logits, teacher, loss).sum().backward();
      sgd.step();
    }
    const auto p = torch::softmax(logits.detach(), -1);
    const double entropy = -(p * p.log()).sum().item<double>();
    if (loss == RouterLoss::kSoftCrossEntropy) {
      EXPECT_NEAR(entropy, teacher_entropy, 1e-3);
      EXPECT_TRUE(torch::allclose(p, teacher, 1e-3, 1e-4));
    } else {
      EXPECT_LT(entropy, teacher_entropy - 0.5) << "teacher " << teacher_entropy;
      EXPECT_EQ(p.argmax().item<std::int64_t>(), 0);
    }
  }
}

}  // namespace svmoe
