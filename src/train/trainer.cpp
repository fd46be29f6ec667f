#include "svmoe/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/train/optimizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/logging.h"
#include "svmoe/util/signals.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr int kTrainerStateVersion = 1;

// Next-token cross-entropy of a batch [B, T + 1]: inputs are the first T tokens, targets the last T.
torch::Tensor causal_lm_loss(CausalLM& model, const torch::Tensor& batch) {
  const auto length = batch.size(1) - 1;
  const auto logits = model->forward(batch.narrow(1, 0, length)).logits;  // [B, T, V]
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32),
                                              batch.narrow(1, 1, length).reshape({-1}));
}

double resident_megabytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

std::int64_t checkpoint_step(const fs::path& path) {
  static const std::regex pattern(R"(checkpoint-(\d+))");
  std::smatch match;
  const std::string name = path.filename().string();
  return std::regex_match(name, match, pattern) ? std::stoll(match[1].str()) : -1;
}

// metrics.jsonl keeps only lines of steps <= `step` (what a resumed run has not redone).
void truncate_metrics(const fs::path& metrics, std::int64_t step) {
  if (!fs::exists(metrics)) return;
  std::ifstream in(metrics);
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (Json::parse(line).value("step", std::int64_t{0}) <= step) kept += line + "\n";
    } catch (const Json::parse_error&) {
      // a line cut by a crash: dropped
    }
  }
  write_file_atomically(metrics, kept);
}

void append_metrics(const fs::path& metrics, const Json& line) {
  std::ofstream out(metrics, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
}

void save_checkpoint(TrainingJob& job, const AdamW& optimizer, const WindowSampler& sampler, std::int64_t step,
                     const TrainSettings& settings) {
  const fs::path directory = job.output / ("checkpoint-" + std::to_string(step));
  SaveOptions options;
  options.copy_tokenizer_from = job.tokenizer_from;
  options.svmoe_state = named_buffers(*job.model);
  save_hf_checkpoint(directory, job.model->config(), named_tensors(*job.model), options, job.base_config);
  // The trainer's state goes in after the model, each file atomically; a checkpoint counts as
  // complete only once trainer_state.json, written last, exists.
  write_safetensors(directory / "optimizer.safetensors", optimizer.state());
  const Json state = {{"version", kTrainerStateVersion},
                      {"step", step},
                      {"data", {{"epoch", sampler.position().epoch}, {"index", sampler.position().index}}},
                      {"seed", job.seed}};
  write_file_atomically(directory / "trainer_state.json", state.dump(2) + "\n");
  // Keep the newest `keep_last`.
  std::vector<std::pair<std::int64_t, fs::path>> checkpoints;
  for (const auto& entry : fs::directory_iterator(job.output)) {
    const auto s = checkpoint_step(entry.path());
    if (s >= 0 && entry.is_directory()) checkpoints.emplace_back(s, entry.path());
  }
  std::sort(checkpoints.begin(), checkpoints.end());
  for (std::size_t i = 0; i + static_cast<std::size_t>(settings.keep_last) < checkpoints.size(); ++i) {
    fs::remove_all(checkpoints[i].second);
  }
  spdlog::info("train: saved {}", directory.string());
}

}  // namespace

std::optional<fs::path> latest_checkpoint(const fs::path& run) {
  std::optional<fs::path> best;
  std::int64_t best_step = -1;
  if (!fs::is_directory(run)) return best;
  for (const auto& entry : fs::directory_iterator(run)) {
    const auto step = checkpoint_step(entry.path());
    if (step > best_step && fs::exists(entry.path() / "trainer_state.json")) {
      best_step = step;
      best = entry.path();
    }
  }
  return best;
}

double evaluate_loss(CausalLM& model, WindowSampler& sampler, std::int64_t batches, std::int64_t micro_batch) {
  torch::NoGradGuard no_grad;
  model->eval();
  sampler.set_position({});  // the same windows at every evaluation
  double total = 0.0;
  for (std::int64_t b = 0; b < batches; ++b) total += causal_lm_loss(model, sampler.next(micro_batch)).item<double>();
  model->train();
  return total / static_cast<double>(batches);
}

TrainResult train_causal_lm(TrainingJob& job, const TrainSettings& t) {
  fs::create_directories(job.output);
  const ScopedLogFile log_copy(job.output / "train.log");  // appended to across resumes
  const fs::path metrics = job.output / "metrics.jsonl";
  WindowSampler train(job.train_shards, t.sequence_length, job.seed);
  std::optional<WindowSampler> valid;
  if (!job.valid_shards.empty()) valid.emplace(job.valid_shards, t.sequence_length, job.seed + 1);

  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (auto& item : job.model->named_parameters(/*recurse=*/true)) parameters.emplace_back(item.key(), item.value());
  AdamW optimizer(parameters, {t.beta1, t.beta2, t.eps, t.weight_decay});

  TrainResult result;
  std::int64_t step = 0;
  if (const auto checkpoint = latest_checkpoint(job.output)) {
    const Json state = Json::parse(read_text_file(*checkpoint / "trainer_state.json"));
    if (state.value("version", 0) > kTrainerStateVersion) {
      throw FormatError("'" + (*checkpoint / "trainer_state.json").string() + "' is of a newer svmoe",
                        "resume with the svmoe that wrote it, or start a new run directory");
    }
    load_weights(*job.model, load_hf_checkpoint(*checkpoint));
    optimizer.load_state(SafetensorsFile::open(*checkpoint / "optimizer.safetensors"));
    train.set_position({state["data"]["epoch"].get<std::uint64_t>(), state["data"]["index"].get<std::uint64_t>()});
    step = state["step"].get<std::int64_t>();
    truncate_metrics(metrics, step);
    result.resumed = true;
    spdlog::info("train: resuming from {} (step {})", checkpoint->string(), step);
  }

  install_stop_handlers();
  job.model->train();
  const std::int64_t tokens_per_step = t.micro_batch * t.grad_accum * t.sequence_length;
  const auto start = std::chrono::steady_clock::now();
  auto last_log = start;
  std::int64_t steps_since_log = 0;
  while (step < t.steps) {
    const double lr = learning_rate_at(step, t.steps, t.warmup_steps, t.learning_rate, t.min_lr_ratio, t.schedule);
    double loss_sum = 0.0;
    for (std::int64_t micro = 0; micro < t.grad_accum; ++micro) {
      const auto loss = causal_lm_loss(job.model, train.next(t.micro_batch));
      (loss / static_cast<double>(t.grad_accum)).backward();
      loss_sum += loss.item<double>();
    }
    const double loss = loss_sum / static_cast<double>(t.grad_accum);
    if (!std::isfinite(loss)) {
      throw Error("the training loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1),
                  "lower train.learning_rate or raise train.warmup_steps; resume from the last checkpoint");
    }
    const double grad_norm = clip_gradients(optimizer.parameters(), t.grad_clip);
    optimizer.step(lr);
    optimizer.zero_grad();
    ++step;
    ++steps_since_log;
    result.last_loss = loss;

    if (step % t.log_every == 0 || step == t.steps) {
      const auto now = std::chrono::steady_clock::now();
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double interval = std::chrono::duration<double>(now - last_log).count();
      const double tokens_per_second = interval > 0 ? tokens_per_step * steps_since_log / interval : 0.0;
      last_log = now;
      steps_since_log = 0;
      append_metrics(metrics, {{"step", step},
                               {"tokens", step * tokens_per_step},
                               {"loss", loss},
                               {"lr", lr},
                               {"grad_norm", grad_norm},
                               {"tokens_per_s", tokens_per_second},
                               {"elapsed_s", elapsed},
                               {"memory_mb", resident_megabytes()}});
      const double eta = tokens_per_second > 0 ? (t.steps - step) * tokens_per_step / tokens_per_second : 0.0;
      // One complete line per report: readable in a Slurm log file as on a terminal.
      spdlog::info("train: step {}/{} ({:.0f}%) loss {:.4f} lr {:.2e} grad_norm {:.3f} {:.0f} tokens/s ETA {:.0f} s",
                   step, t.steps, 100.0 * step / t.steps, loss, lr, grad_norm, tokens_per_second, eta);
    }
    const bool last = step == t.steps;
    if (valid && ((t.eval_every > 0 && step % t.eval_every == 0) || last)) {
      const double valid_loss = evaluate_loss(job.model, *valid, t.eval_batches, t.micro_batch);
      result.valid_loss = valid_loss;
      append_metrics(metrics, {{"step", step}, {"valid_loss", valid_loss}, {"valid_ppl", std::exp(valid_loss)}});
      spdlog::info("train: step {} valid loss {:.4f} (ppl {:.2f})", step, valid_loss, std::exp(valid_loss));
    }
    if ((t.save_every > 0 && step % t.save_every == 0) || last || stop_requested()) {
      save_checkpoint(job, optimizer, train, step, t);
    }
    if (stop_requested() && !last) {
      spdlog::warn("train: signal {} received: stopped after step {} with a checkpoint; run again to resume",
                   stop_signal(), step);
      result.interrupted = true;
      break;
    }
  }
  result.steps = step;
  return result;
}

}  // namespace svmoe
