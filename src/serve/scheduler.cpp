// The model thread: wait for queued sequences, take up to max_batch_size of them, generate them as
// one batch (posting every token to its job), then add what each finished sequence's choice needs
// beyond its tokens (the prompt's log-probs for echo, the routing), and post it.
#include "svmoe/serve/scheduler.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

namespace svmoe {

CompletionJob::CompletionJob(CompletionRequest request, std::uint64_t seed)
    : request_(std::move(request)),
      seed_(seed),
      progress_(request_.sequences()),
      results_(request_.sequences()),
      remaining_(request_.sequences()) {}

// A job is shared by the HTTP thread that waits on it and the model thread that fills it: every
// change bumps `version_` under the mutex and wakes the waiters, so a reader that saw version v
// waits only for v + 1 (a stream sends what changed; a plain request waits for `done`).
CompletionJob::Snapshot CompletionJob::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {version_, progress_, results_, remaining_ == 0 || !failure_.empty(), failure_};
}

std::uint64_t CompletionJob::wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return version_ > seen; });
  return version_;
}

void CompletionJob::changed_locked() {
  ++version_;
  changed_.notify_all();
}

void CompletionJob::update(std::size_t sequence, const GeneratedText& so_far) {
  std::lock_guard<std::mutex> lock(mutex_);
  progress_[sequence] = so_far;
  changed_locked();
}

void CompletionJob::finish(std::size_t sequence, ChoiceResult result) {
  std::lock_guard<std::mutex> lock(mutex_);
  progress_[sequence] = result.generated;
  progress_[sequence].finished = true;
  results_[sequence] = std::move(result);
  --remaining_;
  changed_locked();
}

void CompletionJob::fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_.empty()) failure_ = message;
  changed_locked();
}

Scheduler::Scheduler(CausalLMImpl& model, const Tokenizer& tokenizer, SchedulerOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)), thread_([this] { run(); }) {}

Scheduler::~Scheduler() { drain(); }

// A request's sequences (prompts x n) join the queue whole or not at all: the bound counts
// sequences, not requests, so one request with n = 64 cannot overfill it. An empty queue takes
// any request, so a request larger than the bound still runs (alone) rather than never.
Scheduler::Admission Scheduler::submit(const std::shared_ptr<CompletionJob>& job) {
  const auto sequences = job->request().sequences();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_) return Admission::kDraining;
    if (static_cast<std::int64_t>(queue_.size() + sequences) > options_.max_queued && !queue_.empty()) {
      return Admission::kBusy;
    }
    for (std::size_t i = 0; i < sequences; ++i) queue_.push_back({job, i});
    counts_.queued = static_cast<std::int64_t>(queue_.size());
  }
  wake_.notify_one();
  return Admission::kQueued;
}

void Scheduler::stop_accepting() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
  }
  wake_.notify_all();
}

void Scheduler::drain() {
  stop_accepting();
  if (thread_.joinable()) thread_.join();
}

SchedulerCounts Scheduler::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

// The model thread's loop: sleep until there is work or a drain, take the oldest sequences up to
// max_batch_size (static batching: the batch runs to its end before the next one is formed),
// run them, count them. Draining ends the loop only once the queue is empty.
void Scheduler::run() {
  torch::NoGradGuard no_grad;
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return draining_ || !queue_.empty(); });
      if (queue_.empty()) return;  // draining, and nothing left
      while (!queue_.empty() && static_cast<std::int64_t>(batch.size()) < options_.max_batch_size) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      counts_.queued = static_cast<std::int64_t>(queue_.size());
      counts_.running = static_cast<std::int64_t>(batch.size());
    }
    run_batch(batch);
    std::lock_guard<std::mutex> lock(mutex_);
    counts_.running = 0;
    counts_.batches += 1;
    counts_.sequences += static_cast<std::int64_t>(batch.size());
  }
}

// One batch: the sequences still wanted become generation requests (a cancelled job's, or
// max_tokens 0 with echo, generate nothing); sequence i of a request samples with seed + i, so
// its tokens do not depend on the batch it lands in (SchedulerTest's batched = alone law).
void Scheduler::run_batch(std::vector<Item>& batch) {
  std::vector<GenerationRequest> requests;
  std::vector<std::size_t> generating;  // requests[i] is batch[generating[i]]
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& job = *batch[i].job;
    const auto& r = job.request();
    if (job.cancelled() || r.max_tokens == 0) continue;
    GenerationRequest request;
    request.prompt = r.prompts[batch[i].sequence / static_cast<std::size_t>(r.n)].ids;
    request.max_new_tokens = r.max_tokens;
    request.stop = r.stop;
    request.sampling = {r.temperature, r.top_k, r.top_p, r.repetition_penalty, job.seed() + batch[i].sequence};
    request.logprobs = r.logprobs;
    requests.push_back(std::move(request));
    generating.push_back(i);
  }
  try {
    // Every new token is posted to its job (what a stream sends); returning false stops that
    // row (its client went away) while the rest of the batch goes on.
    GenerationOptions options = options_.generation;
    options.on_token = [&](std::size_t row, const GeneratedText& so_far) {
      const Item& item = batch[generating[row]];
      item.job->update(item.sequence, so_far);
      return !item.job->cancelled();
    };
    GenerationTimings timings;
    auto generated = generate(model_, &tokenizer_, requests, options, &timings);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      counts_.timings.prompt_tokens += timings.prompt_tokens;
      counts_.timings.prompt_seconds += timings.prompt_seconds;
      counts_.timings.generated_tokens += timings.generated_tokens;
      counts_.timings.generation_seconds += timings.generation_seconds;
    }
    std::vector<GeneratedText> by_item(batch.size());
    for (std::size_t row = 0; row < generating.size(); ++row) by_item[generating[row]] = std::move(generated[row]);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& item = batch[i];
      if (item.job->cancelled()) {
        by_item[i].finish = FinishReason::kCancelled;
        item.job->finish(item.sequence, {std::move(by_item[i]), {}, {}});
        continue;
      }
      item.job->finish(item.sequence, finish_sequence(*item.job, item.sequence, std::move(by_item[i])));
    }
  } catch (const std::exception& e) {
    // A failure of the model (out of memory, say) fails the batch's requests, not the server.
    spdlog::error("serve: a batch of {} sequence(s) failed: {}", batch.size(), e.what());
    for (auto& item : batch) item.job->fail(e.what());
  }
}

// What a choice needs beyond its tokens, each one more forward pass over the whole sequence:
// echo's prompt log-probs (log_softmax of the logits at each prompt position) and the routing of
// every token (of the prompt too with echo).
ChoiceResult Scheduler::finish_sequence(const CompletionJob& job, std::size_t sequence, GeneratedText generated) {
  const auto& r = job.request();
  const auto& prompt = r.prompts[sequence / static_cast<std::size_t>(r.n)].ids;
  ChoiceResult result;
  if (r.echo && r.logprobs >= 0) result.prompt_logprobs = sequence_logprobs(model_, prompt, r.logprobs);
  if (r.routing && options_.routing_available) {
    std::vector<std::int32_t> ids = prompt;
    ids.insert(ids.end(), generated.tokens.begin(), generated.tokens.end());
    result.routing = routing_of_tokens(model_, ids, r.echo ? 0 : prompt.size());
  }
  result.generated = std::move(generated);
  return result;
}

}  // namespace svmoe
