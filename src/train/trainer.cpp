#include "svmoe/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/io/metrics_log.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/model/device.h"
#include "svmoe/train/optimizer.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/logging.h"
#include "svmoe/util/progress.h"
#include "svmoe/util/signals.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr int kTrainerStateVersion = 2;

double resident_megabytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

Json position_to_json(const SamplerPosition& position) {
  Json sources = Json::array();
  for (const auto& p : position) sources.push_back({{"epoch", p.epoch}, {"index", p.index}});
  return {{"sources", sources}};
}

SamplerPosition position_from_json(const Json& data) {
  SamplerPosition position;
  for (const auto& p : data.at("sources")) {
    position.push_back({p.at("epoch").get<std::uint64_t>(), p.at("index").get<std::uint64_t>()});
  }
  return position;
}

// Every rank calls it: rank 0 writes the model, each rank its shard of a sharded optimizer.
void save_checkpoint(TrainingJob& job, const AdamW& optimizer, const WindowSampler& sampler, std::int64_t step,
                     const TrainSettings& settings) {
  const ProcessGroup& group = job.group;
  const RunDirectory run(job.output);
  const fs::path directory = run.checkpoint(step);
  if (group.is_main()) save_model(job, directory);
  // The trainer's state goes in after the model, each file atomically; a checkpoint counts as
  // complete only once trainer_state.json, written last, exists.
  if (optimizer.sharded()) {
    group.barrier();  // the directory exists
    // ZeRO-1: each rank writes the shard of the state it holds.
    write_safetensors(RunDirectory::optimizer_state(directory, group.rank(), group.world_size()), optimizer.state());
    group.barrier();  // every shard is written
  } else if (group.is_main()) {
    write_safetensors(RunDirectory::optimizer_state(directory), optimizer.state());
  }
  if (!group.is_main()) return;
  const Json state = {{"version", kTrainerStateVersion},
                      {"step", step},
                      {"data", position_to_json(sampler.position())},
                      {"seed", job.seed},
                      {"world_size", group.world_size()},
                      {"optimizer_shards", optimizer.sharded() ? group.world_size() : 0}};
  write_file_atomically(RunDirectory::trainer_state(directory), state.dump(2) + "\n");
  // Keep the newest `keep_last`.
  const auto checkpoints = run.checkpoints();
  for (std::size_t i = 0; i + static_cast<std::size_t>(settings.keep_last) < checkpoints.size(); ++i) {
    fs::remove_all(checkpoints[i].second);
  }
  spdlog::info("train: saved {}", directory.string());
}

// ZeRO-1: each rank updated the parameters it holds the state of; every rank gets them all.
void share_updated_parameters(const AdamW& optimizer, const ProcessGroup& group) {
  for (int owner = 0; owner < group.world_size(); ++owner) group.broadcast(optimizer.slice_views(owner), owner);
}

// Restores model, optimizer and data position from the newest checkpoint; the step it holds.
std::int64_t resume(TrainingJob& job, AdamW& optimizer, WindowSampler& sampler, const fs::path& checkpoint,
                    std::int64_t micro_batch) {
  const fs::path state_path = RunDirectory::trainer_state(checkpoint);
  const Json state = Json::parse(read_text_file(state_path));
  if (state.value("version", 0) != kTrainerStateVersion) {
    throw FormatError("'" + state_path.string() + "' is of trainer state version " +
                          std::to_string(state.value("version", 0)) + "; this svmoe reads version " +
                          std::to_string(kTrainerStateVersion),
                      "resume with the svmoe that wrote it, or start a new run directory");
  }
  const int world = state.value("world_size", 1);
  if (world != job.group.world_size()) {
    // The data position counts windows of the global batch; a different number of ranks would
    // read other windows than the uninterrupted run.
    spdlog::warn("train: {} was written by {} process(es), this run has {}: the global batch is now {} windows",
                 checkpoint.string(), world, job.group.world_size(), micro_batch * job.group.world_size());
  }
  load_weights(*job.model, load_hf_checkpoint(checkpoint));
  // Whole, or in the shards of any number of ranks: each rank takes the state of its parameters.
  std::vector<SafetensorsFile> optimizer_files;
  const int shards = state.value("optimizer_shards", 0);
  if (shards == 0) optimizer_files.push_back(SafetensorsFile::open(RunDirectory::optimizer_state(checkpoint)));
  for (int r = 0; r < shards; ++r) {
    optimizer_files.push_back(SafetensorsFile::open(RunDirectory::optimizer_state(checkpoint, r, shards)));
  }
  optimizer.load_state(optimizer_files);
  sampler.set_position(position_from_json(state.at("data")));
  return state.at("step").get<std::int64_t>();
}

// This rank's part of the next global micro-batch, its token ids checked on the CPU (where that
// costs no wait for the GPU), on `device`.
torch::Tensor next_batch(WindowSampler& sampler, std::int64_t micro_batch, const ProcessGroup& group,
                         std::int64_t vocab_size, const torch::Device& device) {
  const auto batch = sampler.next_part(micro_batch, group.rank(), group.world_size());
  check_token_ids(batch, vocab_size);
  return batch.to(device);
}

// The mean of the objective's validation part over `batches` global batches, all ranks together.
double validate(TrainingObjective& objective, CausalLM& model, WindowSampler& sampler, std::int64_t batches,
                std::int64_t micro_batch, const torch::Device& device, const ProcessGroup& group) {
  torch::NoGradGuard no_grad;
  model->eval();
  sampler.set_position({});  // the same windows at every evaluation
  double total = 0.0;
  for (std::int64_t b = 0; b < batches; ++b) {
    const auto batch = next_batch(sampler, micro_batch, group, model->config().vocab_size, device);
    total += objective.compute(model, batch).parts.at(objective.validation_part()).item<double>();
  }
  model->train();
  return group.sum(total) / static_cast<double>(batches * group.world_size());
}

// Casts the parameters (not the buffers: norms' statistics, aux_free's bias) to `dtype`.
void cast_parameters(CausalLM& model, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.scalar_type() != dtype) p.set_data(p.data().to(dtype));
  }
}

// Sums the step's logged parts over micro-batches and ranks, as means.
// The step's mean of each loss part over micro-batches and ranks, from their sums (tensors on
// the training device): one all-reduce and one read from the device for all of them.
std::map<std::string, double> mean_parts(const std::map<std::string, torch::Tensor>& sums, std::int64_t micro_batches,
                                         const ProcessGroup& group) {
  std::vector<torch::Tensor> values;
  for (const auto& [name, value] : sums) values.push_back(value.detach().to(torch::kFloat64).reshape({}));
  auto t = torch::stack(values);
  group.all_reduce_sum({t});
  const auto host = t.to(torch::kCPU);
  std::map<std::string, double> means;
  std::size_t i = 0;
  for (const auto& [name, value] : sums) {
    means[name] =
        host[static_cast<std::int64_t>(i++)].item<double>() / static_cast<double>(micro_batches * group.world_size());
  }
  return means;
}

}  // namespace

void save_model(const TrainingJob& job, const fs::path& directory) {
  SaveOptions options;
  options.copy_tokenizer_from = job.tokenizer_from;
  options.svmoe_state = named_buffers(*job.model);
  ModelConfig config = job.model->config();
  if (job.router_aux_loss_coef) config.router_aux_loss_coef = *job.router_aux_loss_coef;
  const auto dtype = job.model->parameters().front().scalar_type();
  config.dtype = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16" : "float32";
  save_hf_checkpoint(directory, config, named_tensors(*job.model), options, job.base_config);
}

torch::ScalarType parameter_dtype(Precision precision, const torch::Device& device) {
  return resolve_precision(precision, device) == Precision::kFloat32 ? torch::kFloat32 : torch::kBFloat16;
}

double evaluate_loss(CausalLM& model, WindowSampler& sampler, std::int64_t batches, std::int64_t micro_batch) {
  LanguageModelObjective objective(model->config(), {});
  const torch::Device device = model->parameters().front().device();
  return validate(objective, model, sampler, batches, micro_batch, device, ProcessGroup());
}

namespace {

// AdamW over the model's parameters as train.precision and train.zero_stage ask.
AdamW make_optimizer(CausalLM& model, const TrainSettings& t, const ProcessGroup& group) {
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (auto& item : model->named_parameters(/*recurse=*/true)) parameters.emplace_back(item.key(), item.value());
  const int shards = t.zero_stage >= 1 ? group.world_size() : 1;
  return AdamW(parameters, {t.beta1, t.beta2, t.eps, t.weight_decay, /*master_weights=*/t.precision != Precision::kBf16,
                            shards, shards > 1 ? group.rank() : 0});
}

// One optimizer step's gradients: grad_accum micro-batches, averaged over the ranks. Returns
// the loss and its parts, averaged over micro-batches and ranks (summed on the device: no wait
// per micro-batch).
std::map<std::string, double> accumulate_gradients(TrainingJob& job, TrainingObjective& objective, WindowSampler& train,
                                                   const std::vector<torch::Tensor>& trained, const TrainSettings& t) {
  std::map<std::string, torch::Tensor> sums;
  const auto add = [&sums](const std::string& name, const torch::Tensor& value) {
    auto& sum = sums[name];
    sum = sum.defined() ? sum + value.detach() : value.detach();
  };
  for (std::int64_t micro = 0; micro < t.grad_accum; ++micro) {
    const auto batch = next_batch(train, t.micro_batch, job.group, job.model->config().vocab_size, job.device);
    const ObjectiveTerms terms = objective.compute(job.model, batch);
    (terms.loss / static_cast<double>(t.grad_accum)).backward();
    add("loss", terms.loss);
    for (const auto& [name, value] : terms.parts) add(name, value);
  }
  job.group.average_gradients(trained);
  return mean_parts(sums, t.grad_accum, job.group);
}

// What a run shows while it trains: the progress bar every step; every log_every steps one
// complete log line (readable in a Slurm log file as on a terminal) and a metrics line
// (io/metrics_log.h: metrics.jsonl and TensorBoard); each validation. `metrics` is null on the
// ranks other than the main one, which only take part in the collectives.
class StepReporter {
 public:
  StepReporter(MetricsLog* metrics, const TrainSettings& t, std::int64_t tokens_per_step, std::int64_t first_step)
      : metrics_(metrics),
        t_(t),
        tokens_per_step_(tokens_per_step),
        first_step_(first_step),
        main_(metrics != nullptr),
        start_(std::chrono::steady_clock::now()),
        last_log_(start_),
        progress_(t.steps, metrics != nullptr && terminal_progress_wanted()) {}

  // A collective when it logs (the objective's metrics): every rank calls it.
  void step_done(std::int64_t step, double loss, double lr, double grad_norm,
                 const std::map<std::string, double>& parts, TrainingObjective& objective, const ProcessGroup& group) {
    ++steps_since_log_;
    const double run_seconds = seconds_since(start_);
    const double run_rate = run_seconds > 0 ? (step - first_step_) * tokens_per_step_ / run_seconds : 0.0;
    progress_.update(step,
                     fmt::format("loss {:.4f} | {:.0f} tok/s{}", loss, run_rate,
                                 objective.summary().empty() ? "" : " | " + objective.summary()),
                     run_rate > 0 ? (t_.steps - step) * tokens_per_step_ / run_rate : -1.0);
    if (step % t_.log_every != 0 && step != t_.steps) return;
    const double interval = seconds_since(last_log_);
    const double tokens_per_second = interval > 0 ? tokens_per_step_ * steps_since_log_ / interval : 0.0;
    last_log_ = std::chrono::steady_clock::now();
    steps_since_log_ = 0;
    Json line = {{"step", step},
                 {"tokens", step * tokens_per_step_},
                 {"lr", lr},
                 {"grad_norm", grad_norm},
                 {"tokens_per_s", tokens_per_second},
                 {"elapsed_s", seconds_since(start_)},
                 {"memory_mb", resident_megabytes()}};
    for (const auto& [name, value] : parts) line[name] = value;
    line.update(objective.take_metrics(group));
    if (!main_) return;
    std::string terms;
    for (const auto& [name, value] : parts) {
      if (name != "loss") terms += fmt::format(" {} {:.4f}", name, value);
    }
    metrics_->append(line);
    progress_.clear();
    const double eta = tokens_per_second > 0 ? (t_.steps - step) * tokens_per_step_ / tokens_per_second : 0.0;
    spdlog::info("train: step {}/{} ({:.0f}%) loss {:.4f}{} lr {:.2e} grad_norm {:.3f} {:.0f} tokens/s{} ETA {}", step,
                 t_.steps, 100.0 * step / t_.steps, loss, parts.size() > 2 ? terms : "", lr, grad_norm,
                 tokens_per_second, objective.summary().empty() ? "" : " " + objective.summary(), format_duration(eta));
  }

  void validated(std::int64_t step, const std::string& part, double value) {
    if (!main_) return;
    progress_.clear();
    if (part == "lm_loss") {
      metrics_->append({{"step", step}, {"valid_loss", value}, {"valid_ppl", std::exp(value)}});
      spdlog::info("train: step {} valid loss {:.4f} (ppl {:.2f})", step, value, std::exp(value));
    } else {
      metrics_->append({{"step", step}, {"valid_" + part, value}});
      spdlog::info("train: step {} valid {} {:.4f}", step, part, value);
    }
  }

  void clear() { progress_.clear(); }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  MetricsLog* metrics_;
  const TrainSettings& t_;
  std::int64_t tokens_per_step_, first_step_;
  bool main_;
  std::chrono::steady_clock::time_point start_, last_log_;
  std::int64_t steps_since_log_ = 0;
  ProgressBar progress_;
};

}  // namespace

std::optional<DirectoryLock> lock_on_main_rank(const fs::path& output, const std::string& purpose,
                                               const ProcessGroup& group) {
  std::optional<DirectoryLock> lock;
  std::exception_ptr refused;
  if (group.is_main()) {
    try {
      lock.emplace(DirectoryLock::acquire(output, purpose));
    } catch (const LockError&) {
      refused = std::current_exception();
    }
  }
  if (group.any(refused != nullptr)) {
    if (refused) std::rethrow_exception(refused);
    throw LockError("rank 0 could not lock '" + output.string() + "' for writing",
                    "rank 0's error names the process that holds it");
  }
  return lock;
}

TrainResult train_model(TrainingJob& job, const TrainSettings& t) {
  const ProcessGroup& group = job.group;
  const bool main = group.is_main();
  const std::optional<DirectoryLock> lock = lock_on_main_rank(job.output, "training", group);  // one writer
  if (main) fs::create_directories(job.output);
  group.barrier();
  const RunDirectory run(job.output);
  std::optional<ScopedLogFile> log_copy;  // appended to across resumes
  if (main) log_copy.emplace(run.log());
  if (!job.objective)
    job.objective = std::make_shared<LanguageModelObjective>(job.model->config(), LoadBalancingSettings{});
  TrainingObjective& objective = *job.objective;
  WindowSampler train(job.train_sources, t.sequence_length, job.seed);
  std::optional<WindowSampler> valid;
  if (!job.valid_shards.empty()) valid.emplace(job.valid_shards, t.sequence_length, job.seed + 1);

  job.model->to(job.device);
  job.model->model->activation_checkpointing = t.activation_checkpointing;
  const torch::ScalarType dtype = parameter_dtype(t.precision, job.device);
  cast_parameters(job.model, dtype);
  AdamW optimizer = make_optimizer(job.model, t, group);
  std::vector<torch::Tensor> trained;
  for (const auto& [name, p] : optimizer.parameters()) trained.push_back(p);

  TrainResult result;
  std::int64_t step = 0;
  if (const auto checkpoint = run.latest_complete_checkpoint()) {
    step = resume(job, optimizer, train, *checkpoint, t.micro_batch);
    result.resumed = true;
    spdlog::info("train: resuming from {} (step {})", checkpoint->string(), step);
  }
  spdlog::info("train: {} of {} parameter tensors trained in {} on {}; {} windows of {} tokens per step ({} rank(s))",
               optimizer.parameters().size(), job.model->parameters().size(),
               dtype == torch::kFloat32          ? "float32"
               : t.precision == Precision::kBf16 ? "bf16"
                                                 : "bf16 (float32 master weights)",
               job.device.str(), t.micro_batch * t.grad_accum * group.world_size(), t.sequence_length,
               group.world_size());
  if (optimizer.sharded()) {
    spdlog::info("train: optimizer state sharded over {} ranks (ZeRO-1): {:.3f} MB on this rank", group.world_size(),
                 static_cast<double>(optimizer.state_bytes()) / (1 << 20));
  }
  install_stop_handlers();
  job.model->train();
  const std::int64_t tokens_per_step = t.micro_batch * t.grad_accum * t.sequence_length * group.world_size();
  std::optional<MetricsLog> metrics;  // the lines of steps after `step` dropped: the run redoes them
  if (main) metrics.emplace(run, step, job.tensorboard);
  StepReporter reporter(metrics ? &*metrics : nullptr, t, tokens_per_step, step);
  while (step < t.steps) {
    const double lr = learning_rate_at(step, t.steps, t.warmup_steps, t.learning_rate, t.min_lr_ratio, t.schedule);
    const std::map<std::string, double> parts = accumulate_gradients(job, objective, train, trained, t);
    const double loss = parts.at("loss");
    if (!std::isfinite(loss)) {
      throw Error("the training loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1),
                  "lower train.learning_rate or raise train.warmup_steps; resume from the last checkpoint");
    }
    const double grad_norm = clip_gradients(optimizer.parameters(), t.grad_clip);
    optimizer.step(lr);
    optimizer.zero_grad();
    if (optimizer.sharded()) share_updated_parameters(optimizer, group);
    objective.after_step(job.model, group);
    ++step;
    result.last_loss = loss;
    const bool last = step == t.steps;
    const bool stop = group.any(stop_requested());  // every rank stops at the same step
    reporter.step_done(step, loss, lr, grad_norm, parts, objective, group);
    if (valid && ((t.eval_every > 0 && step % t.eval_every == 0) || last)) {
      result.valid_loss = validate(objective, job.model, *valid, t.eval_batches, t.micro_batch, job.device, group);
      reporter.validated(step, objective.validation_part(), *result.valid_loss);
    }
    if ((t.save_every > 0 && step % t.save_every == 0) || last || stop) {
      reporter.clear();
      save_checkpoint(job, optimizer, train, step, t);
      group.barrier();
    }
    if (stop && !last) {
      spdlog::warn("train: signal {} received: stopped after step {} with a checkpoint; run again to resume",
                   stop_signal(), step);
      result.interrupted = true;
      break;
    }
  }
  reporter.clear();
  result.steps = step;
  return result;
}

}  // namespace svmoe
