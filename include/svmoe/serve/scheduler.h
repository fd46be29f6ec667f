// svmoe serve's model thread (docs/serving.md). HTTP threads check a request, make it a
// CompletionJob of prompts x n sequences and submit it; one thread owns the model and runs the
// queued sequences in batches of up to max_batch_size (eval/generation.h's generate, a static
// batch: sequences that arrive while a batch runs wait for the next one). Each token a sequence
// gets is posted to its job (streaming reads it from there); a finished sequence gets its prompt's
// log-probs (echo) and its routing, each from one run of the whole sequence. A job whose client
// went away is cancelled: its sequences stop at their next token.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "svmoe/serve/completions.h"

namespace svmoe {

class CompletionJob {
 public:
  // `seed`: sequence i samples with seed + i (the request's seed, or one the server chose).
  CompletionJob(CompletionRequest request, std::uint64_t seed);

  const CompletionRequest& request() const { return request_; }
  std::uint64_t seed() const { return seed_; }

  // What the HTTP thread sees at one moment.
  struct Snapshot {
    std::uint64_t version = 0;
    std::vector<GeneratedText> progress;               // per sequence, so far
    std::vector<std::optional<ChoiceResult>> results;  // per sequence, once finished
    bool done = false;                                 // every sequence finished (or the job failed)
    std::string failure;                               // an error of the model thread
  };
  Snapshot snapshot() const;
  // Waits until the version passes `seen` or `timeout` passes; returns the version.
  std::uint64_t wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const;

  // The model thread's side.
  void update(std::size_t sequence, const GeneratedText& so_far);
  void finish(std::size_t sequence, ChoiceResult result);
  void fail(const std::string& message);

  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  void changed_locked();

  const CompletionRequest request_;
  const std::uint64_t seed_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<GeneratedText> progress_;
  std::vector<std::optional<ChoiceResult>> results_;
  std::size_t remaining_;
  std::uint64_t version_ = 0;
  std::string failure_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  std::int64_t max_batch_size = 8;
  std::int64_t max_queued = 256;
  GenerationOptions generation;    // kv_cache and end-of-text ids (on_token is the scheduler's)
  bool routing_available = false;  // an MoE: svmoe_routing has something to report
};

struct SchedulerCounts {
  std::int64_t queued = 0;   // sequences waiting
  std::int64_t running = 0;  // sequences in the batch now
  std::int64_t batches = 0;
  std::int64_t sequences = 0;  // finished
  GenerationTimings timings;
};

class Scheduler {
 public:
  Scheduler(CausalLMImpl& model, const Tokenizer& tokenizer, SchedulerOptions options);
  ~Scheduler();  // drains
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Admission { kQueued, kBusy, kDraining };
  Admission submit(const std::shared_ptr<CompletionJob>& job);

  // Refuses new jobs from now on (submit answers kDraining).
  void stop_accepting();
  // stop_accepting(), then finishes the queued jobs and stops the model thread. Idempotent.
  void drain();
  bool draining() const { return draining_; }
  SchedulerCounts counts() const;

 private:
  struct Item {
    std::shared_ptr<CompletionJob> job;
    std::size_t sequence;
  };
  void run();
  void run_batch(std::vector<Item>& batch);
  ChoiceResult finish_sequence(const CompletionJob& job, std::size_t sequence, GeneratedText generated);

  CausalLMImpl& model_;
  const Tokenizer& tokenizer_;
  const SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  std::atomic<bool> draining_{false};
  SchedulerCounts counts_;
  std::thread thread_;
};

}  // namespace svmoe
