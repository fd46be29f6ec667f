#include "svmoe/model/compat.h"
#include "svmoe/train/optimizer.h"
#include "svmoe/util/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <algorithm>

#include "test_support.h"

namespace svmoe {

// Against LibTorch's own AdamW: the same parameters, gradients and hyper-parameters.
TEST(AdamWReference, MatchesTorchOptimAdamW) {
  for (const double decay : {0.0, 0.1}) {
    torch::manual_seed(0);
    auto ours = torch::randn({4, 3}).requires_grad_(true);
    auto theirs = ours.detach().clone().requires_grad_(true);
    AdamW optimizer({{"w", ours}}, {0.9, 0.95, 1e-8, decay});
    torch::optim::AdamW reference({theirs},
                                  torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(decay));
    for (int step = 0; step < 6; ++step) {
      const auto grad = torch::randn({4, 3});
      ours.mutable_grad() = grad.clone();
      theirs.mutable_grad() = grad.clone();
      optimizer.step(1e-2);
      reference.step();
    }
    EXPECT_TRUE(torch::allclose(ours, theirs, 1e-6, 1e-6)) << decay;
  }
}

// The fused update (at::_fused_adamw_ on LibTorch 2.4+, foreach operations on CI's 1.13) makes
// the loop's: a decayed matrix, an undecayed vector, a bf16 parameter with its float32 master
// copy, on the CPU and, where there is one, on the GPU.
TEST(AdamW, FusedKernelMakesTheLoopsUpdate) {
  std::vector<torch::Device> devices = {torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);
  for (const auto& device : devices) {
    torch::manual_seed(21);
    const std::vector<torch::Tensor> initial = {torch::randn({6, 5}), torch::randn({5}),
                                                torch::randn({4, 3}).to(torch::kBFloat16)};
    const auto make = [&](AdamWKernel kernel, std::vector<torch::Tensor>& parameters) {
      parameters.clear();
      for (const auto& t : initial) parameters.push_back(t.to(device).clone().requires_grad_(true));
      AdamWOptions options;
      options.kernel = kernel;
      return AdamW({{"w", parameters[0]}, {"norm.weight", parameters[1]}, {"low", parameters[2]}}, options);
    };
    std::vector<torch::Tensor> looped, fused;
    AdamW loop = make(AdamWKernel::kLoop, looped);
    AdamW fast = make(AdamWKernel::kFused, fused);
    for (int step = 0; step < 5; ++step) {
      for (std::size_t i = 0; i < initial.size(); ++i) {
        const auto grad = torch::randn(initial[i].sizes()).to(device, initial[i].scalar_type());
        looped[i].mutable_grad() = grad.clone();
        fused[i].mutable_grad() = grad.clone();
      }
      loop.step(1e-2);
      fast.step(1e-2);
    }
    for (std::size_t i = 0; i < initial.size(); ++i) {
      const double tolerance = initial[i].scalar_type() == torch::kBFloat16 ? 1e-2 : 1e-6;
      EXPECT_TRUE(torch::allclose(fused[i].to(torch::kFloat32), looped[i].to(torch::kFloat32), tolerance, tolerance))
          << device << " " << i;
    }
    const auto state = fast.state(), reference = loop.state();
    ASSERT_EQ(state.size(), reference.size());
    for (std::size_t i = 0; i < state.size(); ++i) {
      EXPECT_EQ(state[i].name, reference[i].name);
      EXPECT_TRUE(
          torch::allclose(state[i].tensor.to(torch::kFloat64), reference[i].tensor.to(torch::kFloat64), 1e-5, 1e-7))
          << state[i].name;
    }
  }
}

TEST(AdamW, TheFusedKernelRefusesParametersWithoutAFloat32Copy) {
  auto w = torch::randn({3, 3}).requires_grad_(true);
  AdamWOptions options;
  options.kernel = AdamWKernel::kFused;
  options.master_weights = false;
  auto low = torch::randn({3, 3}).to(torch::kBFloat16).requires_grad_(true);
  // Without master weights a bf16 parameter cannot go through the float32 kernel, on any LibTorch.
  AdamW optimizer({{"w", w}, {"low", low}}, options);
  w.mutable_grad() = torch::ones({3, 3});
  low.mutable_grad() = torch::ones({3, 3}).to(torch::kBFloat16);
  const std::string message = test::error_message<Error>([&] { optimizer.step(1e-3); });
  EXPECT_NE(message.find("fused kernel"), std::string::npos) << message;
}

TEST(AdamW, NoWeightDecayOnVectors) {
  auto bias = torch::ones({5}).requires_grad_(true);
  AdamW optimizer({{"norm.weight", bias}}, {0.9, 0.95, 1e-8, 0.5});
  bias.mutable_grad() = torch::zeros({5});
  optimizer.step(0.1);
  EXPECT_TRUE(torch::equal(bias, torch::ones({5})));  // zero gradient, no decay: unchanged
}

TEST(AdamW, StateRoundTripsExactly) {
  test::ScratchDir dir;
  torch::manual_seed(1);
  auto w = torch::randn({3, 3}).requires_grad_(true);
  AdamW optimizer({{"w", w}}, {});
  w.mutable_grad() = torch::randn({3, 3});
  optimizer.step(1e-3);
  write_safetensors(dir / "opt.safetensors", optimizer.state());
  auto w2 = w.detach().clone().requires_grad_(true);
  AdamW restored({{"w", w2}}, {});
  std::vector<SafetensorsFile> files;
  files.push_back(SafetensorsFile::open(dir / "opt.safetensors"));
  restored.load_state(files);
  EXPECT_EQ(restored.steps(), 1);
  const auto g = torch::randn({3, 3});
  w.mutable_grad() = g.clone();
  w2.mutable_grad() = g.clone();
  optimizer.step(1e-3);
  restored.step(1e-3);
  EXPECT_TRUE(torch::equal(w, w2));
}

TEST(ShardSlices, EqualRunsOfElementsCutAtRows) {
  const auto slices = shard_slices({{4, 3}, {10}, {2, 5}}, 2);  // 32 elements: 16 each
  ASSERT_EQ(slices.size(), 4u);
  const std::vector<std::vector<std::int64_t>> expected = {{0, 0, 4, 0}, {1, 0, 4, 0}, {1, 4, 10, 1}, {2, 0, 2, 1}};
  for (std::size_t i = 0; i < slices.size(); ++i) {
    EXPECT_EQ((std::vector<std::int64_t>{static_cast<std::int64_t>(slices[i].parameter), slices[i].row_begin,
                                         slices[i].row_end, slices[i].shard}),
              expected[i])
        << i;
  }
  for (const auto& slice : shard_slices({{3, 3}}, 1)) EXPECT_EQ(slice.row_end, 3);
}

namespace {
// bf16 parameters (with float32 master weights) of mixed sizes, a copy each call.
std::vector<std::pair<std::string, torch::Tensor>> mixed_parameters(std::uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (int i = 0; i < 7; ++i) {
    const std::vector<std::int64_t> shape =
        i % 3 == 2 ? std::vector<std::int64_t>{8 + i} : std::vector<std::int64_t>{4 + i, 3 + 2 * i};
    parameters.emplace_back("p" + std::to_string(i), torch::randn(shape).to(torch::kBFloat16).requires_grad_(true));
  }
  return parameters;
}
void set_gradients(std::vector<std::pair<std::string, torch::Tensor>>& parameters, std::uint64_t seed) {
  torch::manual_seed(seed);
  for (auto& [name, p] : parameters) p.mutable_grad() = torch::randn(p.sizes()).to(torch::kBFloat16);
}
}  // namespace

// ZeRO-1: each shard updates exactly the rows it owns as the unsharded optimizer does, holds
// half the state (to a row), and a checkpoint of 2 shards resumes on 3 ranks and on 1.
TEST(AdamW, ShardsTogetherMakeTheUnshardedUpdate) {
  test::ScratchDir dir;
  auto whole_parameters = mixed_parameters(3);
  AdamW whole(whole_parameters, {});
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shard_parameters = {mixed_parameters(3),
                                                                                      mixed_parameters(3)};
  std::vector<AdamW> shards;
  for (int r = 0; r < 2; ++r) shards.emplace_back(shard_parameters[r], AdamWOptions{0.9, 0.95, 1e-8, 0.1, true, 2, r});
  EXPECT_EQ(shards[0].state_bytes() + shards[1].state_bytes(), whole.state_bytes());
  const std::int64_t row = 15 * 12;  // the widest row's moments and master: 3 float32 copies of 15
  for (const auto& shard : shards) EXPECT_LE(std::abs(shard.state_bytes() - whole.state_bytes() / 2), row);
  for (int step = 0; step < 3; ++step) {
    set_gradients(whole_parameters, 10 + step);
    whole.step(1e-2);
    for (int r = 0; r < 2; ++r) {
      set_gradients(shard_parameters[r], 10 + step);
      shards[r].step(1e-2);
    }
    // What the trainer's broadcast does: every slice from its owner to the other rank.
    for (const auto& slice : shards[0].partition()) {
      const auto rows = [&](const torch::Tensor& t) {
        return t.narrow(0, slice.row_begin, slice.row_end - slice.row_begin);
      };
      const auto& updated = shard_parameters[slice.shard][slice.parameter].second;
      EXPECT_TRUE(torch::equal(rows(updated), rows(whole_parameters[slice.parameter].second))) << slice.parameter;
      torch::NoGradGuard no_grad;
      rows(shard_parameters[1 - slice.shard][slice.parameter].second).copy_(rows(updated));
    }
  }
  for (int r = 0; r < 2; ++r) write_safetensors(dir / ("shard" + std::to_string(r)), shards[r].state());
  std::vector<SafetensorsFile> files;
  for (int r = 0; r < 2; ++r) files.push_back(SafetensorsFile::open(dir / ("shard" + std::to_string(r))));
  // On 3 ranks (and on 1), each takes its rows from the pieces 2 ranks wrote: the same state.
  const auto whole_state = whole.state();
  for (const int ranks : {3, 1}) {
    for (int r = 0; r < ranks; ++r) {
      AdamW resumed(shard_parameters[0], AdamWOptions{0.9, 0.95, 1e-8, 0.1, true, ranks, r});
      resumed.load_state(files);
      for (const auto& piece : resumed.state()) {
        if (piece.name == "step") continue;
        const auto bracket = piece.name.find('[');
        const auto reference = std::find_if(whole_state.begin(), whole_state.end(), [&](const NamedTensor& t) {
          return t.name == piece.name.substr(0, bracket);
        });
        ASSERT_NE(reference, whole_state.end()) << piece.name;
        torch::Tensor expected = reference->tensor;
        if (bracket != std::string::npos) {
          const std::string range = piece.name.substr(bracket + 1, piece.name.size() - bracket - 2);
          const auto begin = std::stoll(range.substr(0, range.find(':')));
          expected = expected.narrow(0, begin, piece.tensor.size(0));
        }
        EXPECT_TRUE(torch::equal(piece.tensor, expected)) << piece.name;
      }
    }
  }
  AdamW wrong(mixed_parameters(3), AdamWOptions{0.9, 0.95, 1e-8, 0.1, true, 1, 0});
  files.pop_back();  // one shard missing
  EXPECT_THROW(wrong.load_state(files), FormatError);
}

TEST(Schedule, WarmupThenDecayToTheFloor) {
  EXPECT_DOUBLE_EQ(learning_rate_at(0, 100, 10, 1.0, 0.1, LrSchedule::kCosine), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(9, 100, 10, 1.0, 0.1, LrSchedule::kCosine), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(10, 100, 10, 1.0, 0.1, LrSchedule::kCosine), 1.0);
  EXPECT_NEAR(learning_rate_at(55, 100, 10, 1.0, 0.1, LrSchedule::kCosine), 0.55, 1e-12);  // half way: the mean
  EXPECT_NEAR(learning_rate_at(100, 100, 10, 1.0, 0.1, LrSchedule::kCosine), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate_at(55, 100, 10, 1.0, 0.0, LrSchedule::kLinear), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate_at(70, 100, 10, 2.0, 0.1, LrSchedule::kConstant), 2.0);
}

TEST(Clipping, ScalesToTheMaximumNorm) {
  auto a = torch::zeros({2}).requires_grad_(true);
  auto b = torch::zeros({1}).requires_grad_(true);
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(clip_gradients({{"a", a}, {"b", b}}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(std::sqrt(a.grad().pow(2).sum().item<double>() + b.grad().pow(2).sum().item<double>()), 1.0, 1e-5);
}

}  // namespace svmoe
