#include "svmoe/train/benchmark.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/model/compat.h"
#include "svmoe/model/initialization.h"
#include "svmoe/train/objectives.h"
#include "svmoe/train/optimizer.h"
#include "svmoe/util/error.h"

namespace svmoe {

namespace {

ModelConfig moe_config(std::int64_t vocab, std::int64_t hidden, std::int64_t ffn, std::int64_t layers,
                       std::int64_t heads, std::int64_t kv_heads) {
  ModelConfig c;
  c.architecture = Architecture::kMixtral;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.router_aux_loss_coef = 0.01;
  return c;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

// The median of `repetitions` timed calls of `work`, after `warmup` untimed ones.
template <typename Work>
double median_seconds(const BenchOptions& options, Work&& work) {
  for (int i = 0; i < options.warmup; ++i) work();
  synchronize(options.device);
  std::vector<double> seconds;
  for (int i = 0; i < options.repetitions; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    synchronize(options.device);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

double peak_memory_mb(const torch::Device& device) {
  if (const auto cuda = compat::cuda_peak_memory_bytes(device)) return static_cast<double>(*cuda) / (1 << 20);
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

BenchMeasurement measure(const std::string& name, double seconds, double tokens, double flops_per_token,
                         double peak_tflops, const torch::Device& device) {
  BenchMeasurement m;
  m.name = name;
  m.seconds = seconds;
  m.tokens_per_s = tokens / seconds;
  m.flops_per_token = flops_per_token;
  m.tflops = m.tokens_per_s * flops_per_token / 1e12;
  m.mfu = peak_tflops > 0 ? m.tflops / peak_tflops : 0.0;
  m.peak_memory_mb = peak_memory_mb(device);
  return m;
}

// One large matmul in the compute dtype: the peak the MFU is a fraction of.
double measure_peak_tflops(const BenchOptions& options) {
  const std::int64_t n = options.device.is_cuda() ? 8192 : 1024;
  const auto a = torch::randn({n, n}, torch::dtype(options.dtype).device(options.device));
  const auto b = torch::randn({n, n}, torch::dtype(options.dtype).device(options.device));
  torch::NoGradGuard no_grad;
  const double seconds = median_seconds(options, [&] { (void)torch::mm(a, b); });
  return 2.0 * static_cast<double>(n) * n * n / seconds / 1e12;
}

}  // namespace

BenchPreset bench_preset(const std::string& name) {
  if (name == "reference") return {name, moe_config(99584, 2048, 7168, 4, 16, 16), 4, 2048};
  if (name == "tiny") return {name, moe_config(4000, 128, 352, 4, 4, 2), 8, 128};
  throw ConfigError("bench preset '" + name + "' is not known", "use reference or tiny");
}

BenchReport run_bench(const BenchPreset& preset, const BenchOptions& options) {
  BenchReport report;
  report.preset = preset;
  report.expert_path = options.expert_path;
  report.peak_tflops = measure_peak_tflops(options);
  const ModelConfig& config = preset.model;
  const double tokens = static_cast<double>(preset.batch * preset.sequence_length);
  const double train_flops = training_flops_per_token(config, preset.sequence_length);

  CausalLM model(config);
  initialize_weights(*model, config.initializer_range, 1234);
  model->to(options.device, options.dtype);
  model->model->activation_checkpointing = options.activation_checkpointing;
  set_expert_path(*model, options.expert_path);
  torch::manual_seed(1234);
  const auto batch = torch::randint(0, config.vocab_size, {preset.batch, preset.sequence_length + 1},
                                    torch::dtype(torch::kInt64).device(options.device));
  LanguageModelObjective objective(config, {});
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (auto& item : model->named_parameters()) parameters.emplace_back(item.key(), item.value());

  // One optimizer step of `trained` against `loss_of`'s objective, timed.
  const auto time_training_step = [&](TrainingObjective& loss_of,
                                      const std::vector<std::pair<std::string, torch::Tensor>>& trained, double lr) {
    model->train();
    AdamW optimizer(trained, {});
    compat::reset_cuda_peak_memory(options.device);
    return median_seconds(options, [&] {
      loss_of.compute(model, batch).loss.backward();
      optimizer.step(lr);
      optimizer.zero_grad();
    });
  };

  // A full training step: forward, loss, backward, AdamW (float32 master weights below float32).
  {
    const double seconds = time_training_step(objective, parameters, 1e-5);
    report.measurements.push_back(
        measure("train_step", seconds, tokens, train_flops, report.peak_tflops, options.device));
  }
  // The forward pass alone (a third of the training FLOPs).
  {
    torch::NoGradGuard no_grad;
    model->eval();
    compat::reset_cuda_peak_memory(options.device);
    const double seconds = median_seconds(options, [&] { (void)objective.compute(model, batch); });
    report.measurements.push_back(
        measure("forward", seconds, tokens, train_flops / 3, report.peak_tflops, options.device));
  }
  // Stage 3's step: only the routers train, but the gradients still flow back through every
  // block (no weight gradients: about two thirds of the training FLOPs).
  {
    std::vector<std::pair<std::string, torch::Tensor>> routers;
    for (auto& [name, p] : parameters) {
      const bool router = name.find(".gate.") != std::string::npos;
      p.set_requires_grad(router);
      if (router) routers.emplace_back(name, p);
    }
    const auto targets = torch::softmax(torch::randn({config.vocab_size, config.num_local_experts}), -1);
    RouterSupervisionObjective router_objective(
        targets.to(options.device), torch::ones({config.vocab_size}, torch::kBool).to(options.device),
        MissingTarget::kMask, RouterLoss::kSoftCrossEntropy, config.num_hidden_layers);
    const double seconds = time_training_step(router_objective, routers, 1e-3);
    report.measurements.push_back(
        measure("router_step", seconds, tokens, train_flops * 2 / 3, report.peak_tflops, options.device));
    for (auto& [name, p] : parameters) p.set_requires_grad(true);
  }
  // One MoE layer, forward and backward, through each expert path.
  {
    auto* moe = model->model->layers->ptr(0)->as<DecoderLayerImpl>()->block_sparse_moe.get();
    const auto x = torch::randn({preset.batch * preset.sequence_length, config.hidden_size},
                                torch::dtype(options.dtype).device(options.device))
                       .requires_grad_(true);
    const double layer_flops = feed_forward_training_flops_per_token(config);
    for (const ExpertPath path : {ExpertPath::kLoop, ExpertPath::kGrouped}) {
      moe->expert_path = path;
      compat::reset_cuda_peak_memory(options.device);
      const double seconds = median_seconds(options, [&] {
        const MoeOutput out = moe->forward(x);
        out.hidden.sum().backward();
      });
      report.measurements.push_back(measure(std::string("moe_layer_") + enum_name(path), seconds, tokens, layer_flops,
                                            report.peak_tflops, options.device));
    }
    moe->expert_path = options.expert_path;
  }
  return report;
}

nlohmann::json BenchReport::to_json() const {
  nlohmann::json j = {{"preset", preset.name},
                      {"batch", preset.batch},
                      {"sequence_length", preset.sequence_length},
                      {"hidden_size", preset.model.hidden_size},
                      {"intermediate_size", preset.model.intermediate_size},
                      {"num_hidden_layers", preset.model.num_hidden_layers},
                      {"num_attention_heads", preset.model.num_attention_heads},
                      {"num_key_value_heads", preset.model.num_key_value_heads},
                      {"vocab_size", preset.model.vocab_size},
                      {"num_local_experts", preset.model.num_local_experts},
                      {"num_experts_per_tok", preset.model.num_experts_per_tok},
                      {"peak_tflops", peak_tflops},
                      {"expert_path", enum_name(expert_path)},
                      {"measurements", nlohmann::json::array()}};
  for (const auto& m : measurements) {
    j["measurements"].push_back({{"name", m.name},
                                 {"seconds", m.seconds},
                                 {"tokens_per_s", m.tokens_per_s},
                                 {"flops_per_token", m.flops_per_token},
                                 {"tflops", m.tflops},
                                 {"mfu", m.mfu},
                                 {"peak_memory_mb", m.peak_memory_mb}});
  }
  return j;
}

std::string bench_table(const BenchReport& report) {
  std::ostringstream out;
  const auto& c = report.preset.model;
  out << fmt::format(
      "preset {}: {} blocks, hidden {}, FFN {}, {} heads ({} KV), vocabulary {}, {} experts top-{}; batch {} x {} "
      "tokens\npeak (one large matmul): {:.2f} TFLOP/s\n\n",
      report.preset.name, c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
      c.num_key_value_heads, c.vocab_size, c.num_local_experts, c.num_experts_per_tok, report.preset.batch,
      report.preset.sequence_length, report.peak_tflops);
  out << fmt::format("{:<17} {:>10} {:>12} {:>14} {:>10} {:>7} {:>11}\n", "measurement", "ms/step", "tokens/s",
                     "FLOP/token", "TFLOP/s", "MFU", "memory MB");
  for (const auto& m : report.measurements) {
    out << fmt::format("{:<17} {:>10.2f} {:>12.0f} {:>14.4g} {:>10.3f} {:>6.1f}% {:>11.0f}\n", m.name, m.seconds * 1e3,
                       m.tokens_per_s, m.flops_per_token, m.tflops, m.mfu * 100, m.peak_memory_mb);
  }
  out << "\nFLOP/token (../shared/GPU.md): 6 x (blocks x (attention projections + k x 3hf + hN) + hV) + 6 x blocks x "
         "T x h; forward: a third of it, router_step: two thirds; moe_layer_loop/grouped: one layer's experts and "
         "router.\n";
  return out.str();
}

}  // namespace svmoe
