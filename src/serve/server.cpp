// svmoe serve: load the model once, start the model thread (serve/scheduler.h), and answer HTTP
// on cpp-httplib's thread pool. Each completion request is checked on its HTTP thread
// (serve/completions.h), queued as a job, and answered when the job is done, or streamed from it
// token by token. A watcher thread turns SIGTERM into a drain: refuse new work, finish the queued
// work, stop listening.
#include "svmoe/serve/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <csignal>
#include <cstdlib>
#include <random>

#include "svmoe/eval/generate_command.h"
#include "svmoe/serve/scheduler.h"
#include "svmoe/util/error.h"
#include "svmoe/util/signals.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void send_json(httplib::Response& response, int status, const Json& body) {
  response.status = status;
  response.set_content(json_text(body) + "\n", "application/json");
}

void send_error(httplib::Response& response, const ProtocolError& error) {
  send_json(response, error.status(), error_body(error));
}

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A stream's progress through one sequence.
struct StreamCursor {
  std::size_t text_bytes = 0;  // of the generated text sent
  std::size_t logprobs = 0;    // generated tokens whose log-probs were sent
  bool echoed = false;
  bool finished = false;
};

struct StreamState {
  std::atomic<bool> abandoned{false};
  std::uint64_t seen = 0;
  std::vector<StreamCursor> cursors;
  Clock::time_point last_write = Clock::now();
};

class CompletionServer {
 public:
  CompletionServer(const ServeSettings& settings, GenerationModel& loaded, ServeLimits limits, Scheduler& scheduler,
                   std::string api_key)
      : settings_(settings),
        loaded_(loaded),
        tokenizer_(*loaded.tokenizer),
        limits_(std::move(limits)),
        scheduler_(scheduler),
        api_key_(std::move(api_key)),
        routers_(router_names(loaded.config)),
        seeds_(std::random_device{}()),
        created_(unix_time()) {}

  void install(httplib::Server& http) {
    http.set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
      return authorised(request, response) ? httplib::Server::HandlerResponse::Unhandled
                                           : httplib::Server::HandlerResponse::Handled;
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& response) { health(response); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& response) { models(response); });
    http.Post("/v1/completions",
              [this](const httplib::Request& request, httplib::Response& response) { completions(request, response); });
    http.Post("/tokenize", [this](const httplib::Request& request, httplib::Response& response) {
      answer(response, [&] { return tokenize_response(request.body, limits_, tokenizer_); });
    });
    http.Post("/detokenize", [this](const httplib::Request& request, httplib::Response& response) {
      answer(response, [&] { return detokenize_response(request.body, limits_, tokenizer_); });
    });
    http.Post("/v1/chat/completions", [](const httplib::Request&, httplib::Response& response) {
      send_error(response, ProtocolError(404,
                                         "svmoe serve answers /v1/completions only: svmoe's models are base models "
                                         "without a chat template; send the prompt as text",
                                         "", "invalid_request_error", "unsupported_endpoint"));
    });
    // Statuses httplib sets itself (404 no route, 413 too large, 400 unreadable) get an OpenAI body.
    http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
      if (!response.body.empty()) return;
      std::string message = "HTTP status " + std::to_string(response.status);
      if (response.status == 404) message = "no route " + request.method + " " + request.path;
      if (response.status == 413) {
        message = "the request body is larger than this server takes (serve.max_request_bytes)";
        // cpp-httplib caps form-encoded bodies at 8 KiB, whatever the limit: curl -d sends that type.
        if (request.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos) {
          message = "a form-encoded body is limited to 8 KiB: send the JSON with 'Content-Type: application/json'";
        }
      }
      send_json(response, response.status, error_body(message, "invalid_request_error"));
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      spdlog::error("serve: {}", message);
      send_json(response, 500, error_body(message, "server_error"));
    });
  }

 private:
  bool authorised(const httplib::Request& request, httplib::Response& response) const {
    if (api_key_.empty() || request.path == "/health") return true;
    if (request.get_header_value("Authorization") == "Bearer " + api_key_) return true;
    send_json(response, 401,
              error_body(request.has_header("Authorization") ? "Incorrect API key provided"
                                                             : "No API key provided: send 'Authorization: Bearer KEY'",
                         "invalid_request_error", "", "invalid_api_key"));
    return false;
  }

  template <typename Make>
  void answer(httplib::Response& response, Make make) {
    try {
      send_json(response, 200, make());
    } catch (const ProtocolError& e) {
      send_error(response, e);
    }
  }

  void health(httplib::Response& response) const {
    const auto counts = scheduler_.counts();
    send_json(response, scheduler_.draining() ? 503 : 200,
              {{"status", scheduler_.draining() ? "shutting down" : "ok"},
               {"queued_sequences", counts.queued},
               {"running_sequences", counts.running}});
  }

  void models(httplib::Response& response) const {
    const auto& c = loaded_.config;
    Json model = {{"id", limits_.model_name},
                  {"object", "model"},
                  {"created", created_},
                  {"owned_by", "svmoe"},
                  {"max_model_len", limits_.context_length},
                  {"svmoe",
                   {{"model_type", c.model_type()},
                    {"layers", c.num_hidden_layers},
                    {"experts", c.num_local_experts},
                    {"experts_per_token", c.num_experts_per_tok},
                    {"routers", routers_},
                    {"dtype", loaded_.dtype_name},
                    {"device", loaded_.device_name}}}};
    send_json(response, 200, {{"object", "list"}, {"data", Json::array({model})}});
  }

  std::string completion_id() {
    std::lock_guard<std::mutex> lock(seeds_mutex_);
    return fmt::format("cmpl-{:016x}", seeds_());
  }
  std::uint64_t server_seed() {
    std::lock_guard<std::mutex> lock(seeds_mutex_);
    return seeds_();
  }

  void completions(const httplib::Request& http_request, httplib::Response& response) {
    const auto start = Clock::now();
    std::shared_ptr<CompletionJob> job;
    try {
      CompletionRequest request = parse_completion_request(http_request.body, limits_, tokenizer_);
      if (request.stream && request.echo && request.logprobs >= 0) {
        throw ProtocolError(400,
                            "'echo' with 'logprobs' is not streamed (the prompt's log-probs come in one piece): "
                            "send it without 'stream'",
                            "stream");
      }
      const auto seed = request.seed ? *request.seed : server_seed();
      job = std::make_shared<CompletionJob>(std::move(request), seed);
    } catch (const ProtocolError& e) {
      spdlog::info("POST /v1/completions {}: {}", e.status(), e.what());
      send_error(response, e);
      return;
    }
    switch (scheduler_.submit(job)) {
      case Scheduler::Admission::kQueued:
        break;
      case Scheduler::Admission::kBusy:
        response.set_header("Retry-After", "1");
        send_json(response, 503,
                  error_body("the server is busy: more than serve.max_queued (" + std::to_string(settings_.max_queued) +
                                 ") sequences are waiting; retry later",
                             "server_error", "", "server_busy"));
        spdlog::warn("POST /v1/completions 503: busy");
        return;
      case Scheduler::Admission::kDraining:
        send_json(response, 503, error_body("the server is shutting down", "server_error", "", "shutting_down"));
        return;
    }
    const auto id = completion_id();
    if (job->request().stream) {
      stream(job, id, start, response);
    } else {
      respond(*job, id, start, response);
    }
  }

  // One line a request, for the log: "POST /v1/completions 200: 2 prompt(s) x 1, 10 prompt + 10
  // completion tokens, 42 ms".
  void log_done(const CompletionJob& job, const CompletionJob::Snapshot& snapshot, Clock::time_point start,
                const char* how) const {
    const auto usage = usage_of(job, snapshot);
    spdlog::info("POST /v1/completions {}: {} prompt(s) x {}, {} prompt + {} completion tokens, {:.0f} ms", how,
                 job.request().prompts.size(), job.request().n, usage["prompt_tokens"].get<std::int64_t>(),
                 usage["completion_tokens"].get<std::int64_t>(), milliseconds_since(start));
  }

  // OpenAI's usage: each prompt's tokens once (whatever n), every generated token.
  Json usage_of(const CompletionJob& job, const CompletionJob::Snapshot& snapshot) const {
    const auto& r = job.request();
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const auto& p : r.prompts) prompt_tokens += static_cast<std::int64_t>(p.ids.size());
    for (const auto& g : snapshot.progress) completion_tokens += static_cast<std::int64_t>(g.tokens.size());
    return usage_json(prompt_tokens, completion_tokens);
  }

  void respond(const CompletionJob& job, const std::string& id, Clock::time_point start, httplib::Response& response) {
    CompletionJob::Snapshot snapshot = job.snapshot();
    while (!snapshot.done) {
      job.wait_for_change(snapshot.version, std::chrono::milliseconds(1000));
      snapshot = job.snapshot();
    }
    if (!snapshot.failure.empty()) {
      send_json(response, 500, error_body("generation failed: " + snapshot.failure, "server_error"));
      log_done(job, snapshot, start, "500");
      return;
    }
    Json choices = Json::array();
    for (std::size_t i = 0; i < snapshot.results.size(); ++i) {
      choices.push_back(choice_json(job.request(), i, *snapshot.results[i], tokenizer_, routers_));
    }
    send_json(response, 200,
              completion_json(id, unix_time(), limits_.model_name, std::move(choices), usage_of(job, snapshot)));
    log_done(job, snapshot, start, "200");
  }

  // Server-sent events: a chunk per sequence whenever its text grows by whole characters (less
  // what may yet begin a stop string), the last one with its finish_reason (and routing); then,
  // if asked, a usage chunk; then "data: [DONE]". A comment line every second keeps a queued
  // stream alive and finds a client that left (its write fails: the job is cancelled).
  void stream(const std::shared_ptr<CompletionJob>& job, const std::string& id, Clock::time_point start,
              httplib::Response& response) {
    auto state = std::make_shared<StreamState>();
    state->cursors.resize(job->request().sequences());
    response.status = 200;
    response.set_header("Cache-Control", "no-cache");
    response.set_chunked_content_provider(
        "text/event-stream",
        [this, job, id, state, start](std::size_t, httplib::DataSink& sink) {
          return stream_step(*job, id, *state, start, sink);
        },
        // Called when the response ends; unsuccessful: the connection broke (newer cpp-httplib finds
        // a closed peer before asking the provider for more).
        [job, state](bool success) {
          if (!success) abandon(*job, *state);
        });
  }

  static void abandon(CompletionJob& job, StreamState& state) {
    job.cancel();
    if (!state.abandoned.exchange(true)) {
      spdlog::info("POST /v1/completions (stream): the client went away; its sequences stop");
    }
  }

  bool stream_step(CompletionJob& job, const std::string& id, StreamState& state, Clock::time_point start,
                   httplib::DataSink& sink) {
    job.wait_for_change(state.seen, std::chrono::milliseconds(250));
    const auto snapshot = job.snapshot();
    state.seen = snapshot.version;
    const auto write = [&](const std::string& text) {
      if (!sink.write(text.data(), text.size())) {
        abandon(job, state);
        return false;
      }
      state.last_write = Clock::now();
      return true;
    };
    if (!snapshot.failure.empty()) {
      write(server_sent_event(error_body("generation failed: " + snapshot.failure, "server_error")));
      write("data: [DONE]\n\n");
      sink.done();
      log_done(job, snapshot, start, "500 (stream)");
      return true;
    }
    const auto& r = job.request();
    std::size_t hold_back = 0;
    for (const auto& s : r.stop) hold_back = std::max(hold_back, s.size() - 1);
    bool all_finished = true;
    for (std::size_t i = 0; i < state.cursors.size(); ++i) {
      auto& cursor = state.cursors[i];
      if (cursor.finished) continue;
      const bool finished = snapshot.results[i].has_value();
      const GeneratedText& generated = finished ? snapshot.results[i]->generated : snapshot.progress[i];
      const auto& prompt = r.prompts[i / static_cast<std::size_t>(r.n)];
      std::string text;
      if (r.echo && !cursor.echoed) {
        text = prompt.text;
        cursor.echoed = true;
      }
      const auto sendable = std::max(cursor.text_bytes, sendable_text_bytes(generated.text, finished, hold_back));
      text += generated.text.substr(std::min(cursor.text_bytes, generated.text.size()), sendable - cursor.text_bytes);
      cursor.text_bytes = sendable;
      if (text.empty() && !finished) {
        all_finished = false;
        continue;
      }
      Json choice = {{"index", i}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      const auto made = generated.logprobs.size();
      if (r.logprobs >= 0 && made > cursor.logprobs) {
        std::vector<std::int32_t> ids = prompt.ids;
        ids.insert(ids.end(), generated.tokens.begin(), generated.tokens.begin() + static_cast<std::ptrdiff_t>(made));
        std::vector<const TokenLogprob*> entries;
        for (std::size_t t = cursor.logprobs; t < made; ++t) entries.push_back(&generated.logprobs[t]);
        choice["logprobs"] = logprobs_json(tokenizer_, ids, prompt.ids.size() + cursor.logprobs, entries);
        cursor.logprobs = made;
      }
      if (finished) {
        choice["finish_reason"] = finish_reason_name(generated.finish);
        if (r.routing) {
          std::vector<std::int32_t> ids = prompt.ids;
          ids.insert(ids.end(), generated.tokens.begin(), generated.tokens.end());
          choice["svmoe_routing"] =
              routing_json(tokenizer_, ids, r.echo ? 0 : prompt.ids.size(), snapshot.results[i]->routing, routers_);
        }
        cursor.finished = true;
      } else {
        all_finished = false;
      }
      if (!write(server_sent_event(
              completion_json(id, unix_time(), limits_.model_name, Json::array({choice}), nullptr)))) {
        return false;
      }
    }
    if (!all_finished) {
      if (Clock::now() - state.last_write > std::chrono::seconds(1)) return write(": waiting\n\n");
      return true;
    }
    if (r.include_usage) {
      if (!write(server_sent_event(
              completion_json(id, unix_time(), limits_.model_name, Json::array(), usage_of(job, snapshot))))) {
        return false;
      }
    }
    if (!write("data: [DONE]\n\n")) return false;
    sink.done();
    log_done(job, snapshot, start, "200 (stream)");
    return true;
  }

  const ServeSettings& settings_;
  GenerationModel& loaded_;
  const Tokenizer& tokenizer_;
  const ServeLimits limits_;
  Scheduler& scheduler_;
  const std::string api_key_;
  const std::vector<std::string> routers_;
  std::mutex seeds_mutex_;
  std::mt19937_64 seeds_;
  const std::int64_t created_;
};

ServeLimits serve_limits(const ServeSettings& settings, const GenerationModel& loaded) {
  ServeLimits limits;
  limits.model_name = settings.model_name.empty()
                          ? std::filesystem::absolute(settings.model).lexically_normal().filename().string()
                          : settings.model_name;
  if (limits.model_name.empty()) limits.model_name = "svmoe";
  limits.vocab_size = loaded.tokenizer->vocab_size();
  limits.context_length = loaded.config.max_position_embeddings;
  limits.max_prompt_tokens = settings.max_prompt_tokens > 0 ? settings.max_prompt_tokens : limits.context_length;
  limits.max_tokens = settings.max_tokens;
  limits.default_max_tokens = settings.default_max_tokens;
  limits.max_logprobs = settings.max_logprobs;
  return limits;
}

}  // namespace

void run_serve(const ServeSettings& settings, const RuntimeSettings& runtime) {
  std::signal(SIGPIPE, SIG_IGN);  // a client that leaves is a failed write, not the end of the process
  install_stop_handlers();
  GenerationModel loaded = load_generation_model(settings.model, settings.dtype, runtime);
  const ServeLimits limits = serve_limits(settings, loaded);
  std::string api_key = settings.api_key;
  if (api_key.empty()) {
    if (const char* from_environment = std::getenv("SVMOE_API_KEY")) api_key = from_environment;
  }

  SchedulerOptions options;
  options.max_batch_size = settings.max_batch_size;
  options.max_queued = settings.max_queued;
  options.generation.kv_cache = settings.kv_cache;
  options.generation.end_of_text = end_of_text_ids(loaded.config, *loaded.tokenizer);
  options.routing_available = loaded.config.is_moe();
  Scheduler scheduler(*loaded.model, *loaded.tokenizer, options);

  httplib::Server http;
  const auto threads = static_cast<std::size_t>(settings.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<std::size_t>(settings.max_request_bytes));
  CompletionServer server(settings, loaded, limits, scheduler, api_key);
  server.install(http);

  int port = static_cast<int>(settings.port);
  if (port == 0) {
    port = http.bind_to_any_port(settings.host);
    if (port < 0)
      throw IoError("serve: cannot listen on " + settings.host, "is serve.host an address of this machine?");
  } else if (!http.bind_to_port(settings.host, port)) {
    throw IoError("serve: cannot listen on " + settings.host + ":" + std::to_string(port),
                  "is the port in use (another svmoe serve?) or serve.host not an address of this machine? Choose "
                  "another --port, or --port 0 for any free one");
  }
  spdlog::info(
      "serve: {} ({}, {} layers, {} in {}) as '{}', max {} tokens of context; batches of up to {}, KV cache {}{}",
      settings.model.string(), loaded.config.model_type(), loaded.config.num_hidden_layers, loaded.device_name,
      loaded.dtype_name, limits.model_name, limits.context_length, settings.max_batch_size,
      settings.kv_cache ? "on" : "off", api_key.empty() ? "" : ", API key required");
  spdlog::info("serve: listening on http://{}:{}/v1 (SIGTERM or Ctrl-C: finish queued requests and stop)",
               settings.host, port);

  // SIGTERM/SIGINT: refuse new requests, finish the queued ones, then stop listening.
  std::atomic<bool> listening_ended{false};
  std::thread watcher([&] {
    while (!stop_requested() && !listening_ended) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (listening_ended) return;
    scheduler.stop_accepting();
    const auto counts = scheduler.counts();
    spdlog::info("serve: signal {}: refusing new requests, finishing {} queued and {} running sequence(s)",
                 stop_signal(), counts.queued, counts.running);
    scheduler.drain();
    // stop() does nothing before listening has begun (a signal while loading): repeat until it ends.
    while (!listening_ended) {
      http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const bool listened = http.listen_after_bind();
  listening_ended = true;
  watcher.join();
  scheduler.drain();
  const auto counts = scheduler.counts();
  const auto rate = [](std::int64_t tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; };
  spdlog::info(
      "serve: stopped after {} sequence(s) in {} batch(es); prompt {:.1f} tokens/s, generation {:.1f} tokens/s",
      counts.sequences, counts.batches, rate(counts.timings.prompt_tokens, counts.timings.prompt_seconds),
      rate(counts.timings.generated_tokens, counts.timings.generation_seconds));
  if (!listened && !stop_requested()) throw IoError("serve: the HTTP server stopped unexpectedly", "see the log above");
}

}  // namespace svmoe
