#include "svmoe/model/architecture.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <set>

#include "matmul_flops.h"
#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/model/causal_lm.h"
#include "tiny_models.h"

namespace svmoe {

namespace {

// The tests' small model of `architecture` (tests/support/tiny_models.h), vocabulary 50.
ModelConfig small_config(Architecture architecture) { return test::tiny_config(architecture, 50); }

}  // namespace

TEST(Architecture, EveryRowIsFoundByItsModelTypeAndNamesAClassOfItsOwn) {
  std::set<std::string> model_types, classes;
  for (const Architecture a : kArchitectures) {
    const ArchitectureRow& row = architecture_row(a);
    EXPECT_EQ(architecture_of_model_type(row.model_type), a) << row.model_type;
    model_types.insert(row.model_type);
    classes.insert(row.class_name);
    EXPECT_NE(known_model_types().find(row.model_type), std::string::npos);
    EXPECT_EQ(is_moe(a), row.routed_sub_layers > 0) << row.model_type;
    EXPECT_EQ(row.mixing == ExpertMixing::kDense, row.routed_sub_layers == 0) << row.model_type;
  }
  EXPECT_EQ(model_types.size(), std::size(kArchitectures));
  EXPECT_EQ(classes.size(), std::size(kArchitectures));
  EXPECT_FALSE(architecture_of_model_type("gpt2"));
  EXPECT_FALSE(architecture_of_model_type(""));
}

TEST(Architecture, AMergeWritesTheArchitectureItsSettingsName) {
  EXPECT_EQ(merged_architecture(MoeKind::kSparse, false), Architecture::kMixtral);
  EXPECT_EQ(merged_architecture(MoeKind::kSparse, true), Architecture::kQwen2Moe);
  EXPECT_EQ(merged_architecture(MoeKind::kSoft, false), Architecture::kSoftMoe);
  EXPECT_EQ(merged_architecture(MoeKind::kCartesian, false), Architecture::kCartesianMoe);
  EXPECT_EQ(merged_architecture(MoeKind::kCartesian, true), Architecture::kCartesianMoe);
  EXPECT_FALSE(architecture_row(Architecture::kSoftMoe).load_balances);
  EXPECT_TRUE(architecture_row(Architecture::kMixtral).load_balances);
}

// The law that keeps the descriptor, the module and the arithmetic together: for every
// architecture the built model has the parameters parameter_count says, the routers num_routers
// says (one router-logit tensor each), the routers' weights router_parameter_count says, and its
// FFN block under the row's key.
TEST(Architecture, TheBuiltModelHasWhatItsDescriptorAndArithmeticSay) {
  for (const Architecture a : kArchitectures) {
    const ModelConfig c = small_config(a);
    const ArchitectureRow& row = architecture_row(a);
    CausalLM model(c);
    std::int64_t parameters = 0, routers = 0;
    bool ffn_key_found = false;
    for (const auto& item : model->named_parameters()) {
      parameters += item.value().numel();
      const std::string& name = item.key();
      if (name.rfind("model.layers.0." + std::string(row.ffn_key) + ".", 0) == 0) ffn_key_found = true;
      // A router is a block's `gate` (the MoE blocks' and each Cartesian sub-layer's).
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".gate.weight") == 0) {
        routers += item.value().numel();
      }
    }
    EXPECT_EQ(parameters, parameter_count(c)) << row.model_type;
    EXPECT_EQ(routers, router_parameter_count(c)) << row.model_type;
    EXPECT_TRUE(ffn_key_found) << row.model_type << ": no parameter under model.layers.0." << row.ffn_key;
    torch::NoGradGuard no_grad;
    const auto out = model->forward(torch::randint(0, c.vocab_size, {2, 5}));
    EXPECT_EQ(static_cast<std::int64_t>(out.router_logits.size()), c.num_routers()) << row.model_type;
    for (const auto& logits : out.router_logits) {
      EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{10, c.num_local_experts})) << row.model_type;
    }
  }
}

// The FLOPs each position's FFN costs, by hand for each architecture: 6 x the weights it
// multiplies with (model/architecture_arithmetic.h).
TEST(Architecture, FeedForwardFlopsCountWhatEachPositionRunsThrough) {
  const double h = 16, f = 24, n = 4, k = 2;
  EXPECT_DOUBLE_EQ(feed_forward_training_flops_per_token(small_config(Architecture::kLlama)), 6 * 3 * h * f);
  EXPECT_DOUBLE_EQ(feed_forward_training_flops_per_token(small_config(Architecture::kMixtral)),
                   6 * (k * 3 * h * f + h * n));
  // Its shared expert of 24 and the shared expert's gate (one weight row).
  EXPECT_DOUBLE_EQ(feed_forward_training_flops_per_token(small_config(Architecture::kQwen2Moe)),
                   6 * (k * 3 * h * f + h * n + 3 * h * 24 + h));
  // Two sub-layers, each with its router and its shared expert of 12.
  EXPECT_DOUBLE_EQ(feed_forward_training_flops_per_token(small_config(Architecture::kCartesianMoe)),
                   6 * 2 * (k * 3 * h * f + h * n + 3 * h * 12));
  // Every expert on every position.
  EXPECT_DOUBLE_EQ(feed_forward_training_flops_per_token(small_config(Architecture::kSoftMoe)),
                   6 * (n * 3 * h * f + h * n));
  // The soft MoE's slots mix the prefix: 3 L T h N more than a top-N MoE would cost.
  ModelConfig soft = small_config(Architecture::kSoftMoe);
  ModelConfig top_n = small_config(Architecture::kMixtral);
  top_n.num_experts_per_tok = 4;
  EXPECT_DOUBLE_EQ(training_flops_per_token(soft, 32) - training_flops_per_token(top_n, 32), 3 * 2 * 32 * h * n);
}

// The law that keeps the FLOPs arithmetic honest: for every architecture, the matrix products the
// built model's forward runs, as ATen sees their shapes (tests/support/matmul_flops.h), times 3
// for the backward, are the arithmetic's weight part plus twice its causal mixing part (the
// model computes the whole T x T square of attention and soft dispatch and masks half of it).
// head_dim 6 makes q = 24 differ from h = 16, so that a formula with h in place of q fails.
TEST(Architecture, TrainingFlopsAreWhatTheBuiltModelsProductsCount) {
  torch::manual_seed(7);
  for (const Architecture a : kArchitectures) {
    ModelConfig c = small_config(a);
    c.head_dim = 6;
    CausalLM model(c);
    model->eval();
    const std::int64_t batch = 2, length = 7;
    const auto ids = torch::randint(0, c.vocab_size, {batch, length});
    torch::NoGradGuard no_grad;
    // A forward first: on a LibTorch with ATen's grouped product, the first MoE forward of a
    // process asks once whether its CPU kernel exists (compat::cpu_grouped_mm_available), with
    // a small product that is not the model's.
    model->forward(ids);
    const double counted = test::forward_matmul_flops([&] { model->forward(ids); });
    const double tokens = static_cast<double>(batch * length);
    EXPECT_DOUBLE_EQ(3 * counted / tokens,
                     weight_training_flops_per_token(c) + 2 * sequence_mixing_training_flops_per_token(c, length))
        << architecture_row(a).model_type;
    EXPECT_DOUBLE_EQ(training_flops_per_token(c, length),
                     weight_training_flops_per_token(c) + sequence_mixing_training_flops_per_token(c, length));
  }
}

}  // namespace svmoe
