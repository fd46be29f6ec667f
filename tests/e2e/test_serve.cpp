// svmoe serve as a user runs it, on a merged MoE with its tokenizer, over real HTTP
// (cpp-httplib's client and a raw socket): every route answers, every bad request is a 4xx with
// an OpenAI error body and the server stays up, a client leaving mid-stream stops its sequences,
// echo's log-probs equal `svmoe forward`'s logits, the API key is checked, SIGTERM drains, a soak
// of many requests leaves memory flat, and the README's curl examples run.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "server_process.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;
using test::quoted;

namespace {

struct Reply {
  int status = 0;  // 0: no answer (connection refused or closed)
  Json body;
  std::string text;
};

Reply post(int port, const std::string& path, const std::string& body, const httplib::Headers& headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  const auto result = client.Post(path.c_str(), headers, body, "application/json");
  if (!result) return {};
  Reply reply{result->status, Json(), result->body};
  reply.body = Json::parse(result->body, nullptr, false);
  return reply;
}

Reply get(int port, const std::string& path, const httplib::Headers& headers = {}) {
  httplib::Client client("127.0.0.1", port);
  const auto result = client.Get(path.c_str(), headers);
  if (!result) return {};
  return {result->status, Json::parse(result->body, nullptr, false), result->body};
}

// The shape of OpenAI's error body.
void expect_error_body(const Reply& reply, const std::string& context) {
  ASSERT_TRUE(reply.body.is_object()) << context << ": " << reply.text;
  ASSERT_TRUE(reply.body.contains("error")) << context << ": " << reply.text;
  EXPECT_TRUE(reply.body["error"]["message"].is_string()) << context;
  EXPECT_TRUE(reply.body["error"]["type"].is_string()) << context;
}

// Sends a streaming request on a raw socket, reads the first event, and closes the connection.
std::string leave_mid_stream(int port, const std::string& body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return "";
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string received;
  char buffer[4096];
  while (received.find("data: ") == std::string::npos) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return received;
}

}  // namespace

class E2EServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir();
    moe_ = test::tiny_moe(dir_->path(), 4, 2);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static test::ScratchDir* dir_;
  static fs::path moe_;
};
test::ScratchDir* E2EServe::dir_ = nullptr;
fs::path E2EServe::moe_;

TEST_F(E2EServe, AnswersEveryRouteAndRefusesBadInputStayingUp) {
  test::ScratchDir dir;
  test::ServerProcess server({"--model", moe_.string(), "--max-tokens", "64", "--max-request-bytes", "4096"},
                             dir / "serve.log");
  const int port = server.port();
  ASSERT_NE(port, 0);

  const auto health = get(port, "/health");
  EXPECT_EQ(health.status, 200) << health.text;
  EXPECT_EQ(health.body["status"].get<std::string>(), "ok");
  const auto models = get(port, "/v1/models");
  ASSERT_EQ(models.status, 200) << models.text;
  EXPECT_EQ(models.body["data"][0]["id"].get<std::string>(), "moe");
  EXPECT_EQ(models.body["data"][0]["svmoe"]["routers"].size(), 2u);

  const auto good = post(port, "/v1/completions",
                         R"({"model": "moe", "prompt": ["Once upon a time", "In"], "max_tokens": 5,
                             "temperature": 0, "svmoe_routing": true, "logprobs": 2})");
  ASSERT_EQ(good.status, 200) << good.text;
  EXPECT_EQ(good.body["object"].get<std::string>(), "text_completion");
  ASSERT_EQ(good.body["choices"].size(), 2u);
  const auto& choice = good.body["choices"][1];
  EXPECT_EQ(choice["index"].get<int>(), 1);
  const auto generated = choice["logprobs"]["tokens"].size();
  EXPECT_GE(generated, 1u);
  EXPECT_EQ(choice["svmoe_routing"]["tokens"].size(), generated);
  EXPECT_EQ(choice["svmoe_routing"]["tokens"][0]["experts"][1].size(), 2u);  // router 1's top-2
  EXPECT_EQ(good.body["usage"]["completion_tokens"].get<std::size_t>(),
            generated + good.body["choices"][0]["logprobs"]["tokens"].size());

  const auto tokens = post(port, "/tokenize", R"({"prompt": "Once upon a time"})");
  ASSERT_EQ(tokens.status, 200) << tokens.text;
  const auto text = post(port, "/detokenize", Json{{"tokens", tokens.body["tokens"]}}.dump());
  EXPECT_EQ(text.body["prompt"].get<std::string>(), "Once upon a time");

  const std::vector<std::tuple<std::string, std::string, int>> bad = {
      {"malformed JSON", R"({"prompt": "x",)", 400},
      {"invalid UTF-8", "{\"prompt\": \"caf\xC3\"}", 400},
      {"an unknown field", R"({"prompt": "x", "max_token": 3})", 400},
      {"a wrong type", R"({"prompt": "x", "temperature": "hot"})", 400},
      {"an empty prompt", R"({"prompt": ""})", 400},
      {"an id out of range", R"({"prompt": [1, 2, 999999]})", 400},
      {"negative max_tokens", R"({"prompt": "x", "max_tokens": -3})", 400},
      {"huge max_tokens", R"({"prompt": "x", "max_tokens": 100000000000})", 400},
      {"a prompt past the context", Json{{"prompt", std::vector<int>(120, 5)}, {"max_tokens", 20}}.dump(), 400},
      {"another model", R"({"model": "gpt-4", "prompt": "x"})", 404},
      {"a body over the limit", Json{{"prompt", std::string(5000, 'a')}}.dump(), 413},
  };
  for (const auto& [what, body, status] : bad) {
    const auto reply = post(port, "/v1/completions", body);
    EXPECT_EQ(reply.status, status) << what << ": " << reply.text;
    expect_error_body(reply, what);
  }
  const auto no_route = get(port, "/v1/engines");
  EXPECT_EQ(no_route.status, 404);
  expect_error_body(no_route, "no route");
  const auto chat = post(port, "/v1/chat/completions", R"({"messages": []})");
  EXPECT_EQ(chat.status, 404);
  EXPECT_NE(chat.text.find("/v1/completions only"), std::string::npos) << chat.text;

  // A client that leaves mid-stream: its sequences stop, the server goes on.
  const auto first =
      leave_mid_stream(port, R"({"prompt": "Hello", "max_tokens": 64, "temperature": 0, "stream": true})");
  EXPECT_NE(first.find("text/event-stream"), std::string::npos) << first;
  for (int i = 0; i < 100 && server.log().find("the client went away") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(server.log().find("the client went away"), std::string::npos) << server.log();

  EXPECT_TRUE(server.running());
  EXPECT_EQ(get(port, "/health").status, 200);
  EXPECT_EQ(post(port, "/v1/completions", R"({"prompt": "x", "max_tokens": 2})").status, 200);
}

TEST_F(E2EServe, StreamedTextIsTheTextOfTheWholeResponse) {
  test::ScratchDir dir;
  test::ServerProcess server({"--model", moe_.string()}, dir / "serve.log");
  ASSERT_NE(server.port(), 0);
  const std::string body = R"({"prompt": ["The quick brown fox", "Hi"], "max_tokens": 12, "temperature": 0.9,
                               "seed": 4, "n": 2, "stop": ["e t"]})";
  const auto whole = post(server.port(), "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.text;
  auto streamed_body = Json::parse(body);
  streamed_body["stream"] = true;
  streamed_body["stream_options"] = {{"include_usage", true}};
  httplib::Client client("127.0.0.1", server.port());
  const auto result = client.Post("/v1/completions", streamed_body.dump(), "application/json");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/event-stream");
  std::vector<std::string> texts(4);
  std::vector<std::string> finish(4);
  Json usage;
  std::istringstream events(result->body);
  std::string last;
  for (std::string line; std::getline(events, line);) {
    if (line.rfind("data: ", 0) != 0) continue;
    last = line.substr(6);
    if (last == "[DONE]") break;
    const auto chunk = Json::parse(last);
    if (chunk.contains("usage")) usage = chunk["usage"];
    for (const auto& c : chunk["choices"]) {
      texts[c["index"].get<std::size_t>()] += c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) finish[c["index"].get<std::size_t>()] = c["finish_reason"].get<std::string>();
    }
  }
  EXPECT_EQ(last, "[DONE]");
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(texts[i], whole.body["choices"][i]["text"].get<std::string>()) << "choice " << i;
    EXPECT_EQ(finish[i], whole.body["choices"][i]["finish_reason"].get<std::string>()) << "choice " << i;
  }
  EXPECT_EQ(usage, whole.body["usage"]);
}

// The log-prob law through the whole stack: echo's log-probs over HTTP equal log_softmax of the
// logits `svmoe forward` writes for the same ids.
TEST_F(E2EServe, EchoLogprobsEqualSvmoeForwardsLogits) {
  test::ScratchDir dir;
  test::ServerProcess server({"--model", moe_.string()}, dir / "serve.log");
  ASSERT_NE(server.port(), 0);
  const std::vector<std::int64_t> ids = {1, 365, 259, 372, 333, 326, 432, 90, 17, 640};
  const auto reply = post(server.port(), "/v1/completions",
                          Json{{"prompt", ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}}.dump());
  ASSERT_EQ(reply.status, 200) << reply.text;
  const auto& logprobs = reply.body["choices"][0]["logprobs"];
  ASSERT_EQ(logprobs["token_logprobs"].size(), ids.size());
  EXPECT_TRUE(logprobs["token_logprobs"][0].is_null());

  write_safetensors(dir / "ids.safetensors", {{"input_ids", torch::tensor(ids).view({1, -1})}});
  const auto forward =
      test::run_svmoe("forward --model " + quoted(moe_) + " --input " + quoted(dir / "ids.safetensors") + " --output " +
                      quoted(dir / "logits.safetensors") + " --device cpu");
  ASSERT_EQ(forward.exit_code, 0) << forward.output;
  const auto logits = SafetensorsFile::open(dir / "logits.safetensors").tensor("logits")[0].to(torch::kFloat64);
  const auto expected = torch::log_softmax(logits, -1);
  for (std::size_t t = 1; t < ids.size(); ++t) {
    EXPECT_NEAR(logprobs["token_logprobs"][t].get<double>(),
                expected[static_cast<std::int64_t>(t) - 1][ids[t]].item<double>(), 1e-4)
        << "token " << t;
  }
}

TEST_F(E2EServe, ChecksTheApiKeyAndDrainsOnSigterm) {
  test::ScratchDir dir;
  test::ServerProcess server(
      {"--model", moe_.string(), "--api-key", "sesame", "--max-batch-size", "1", "--no-kv-cache"}, dir / "serve.log");
  const int port = server.port();
  ASSERT_NE(port, 0);
  const std::string body = R"({"prompt": "Hello", "max_tokens": 4})";
  const auto none = post(port, "/v1/completions", body);
  EXPECT_EQ(none.status, 401) << none.text;
  EXPECT_EQ(none.body["error"]["code"].get<std::string>(), "invalid_api_key");
  EXPECT_EQ(post(port, "/v1/completions", body, {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(get(port, "/v1/models").status, 401);
  EXPECT_EQ(get(port, "/health").status, 200);  // no key needed
  const httplib::Headers key = {{"Authorization", "Bearer sesame"}};
  EXPECT_EQ(post(port, "/v1/completions", body, key).status, 200);

  // Work in flight when SIGTERM comes: 16 sequences of 60 tokens, one at a time, recomputed.
  auto in_flight = std::async(std::launch::async, [&] {
    return post(port, "/v1/completions",
                R"({"prompt": ["a", "b", "c", "d", "e", "f", "g", "h"], "n": 2, "temperature": 1,
                    "max_tokens": 60})",
                key);
  });
  for (int i = 0; i < 200 && get(port, "/health").body.value("running_sequences", 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(server.pid(), SIGTERM);
  for (int i = 0; i < 100 && server.log().find("refusing new requests") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto late = post(port, "/v1/completions", body, key);
  EXPECT_TRUE(late.status == 503 || late.status == 0) << late.text;  // refused, or no longer listening
  const auto finished = in_flight.get();
  EXPECT_EQ(finished.status, 200) << finished.text;
  EXPECT_EQ(finished.body["choices"].size(), 16u);
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.log();
  EXPECT_NE(server.log().find("serve: stopped after"), std::string::npos) << server.log();
}

// Many requests of every kind, bad ones and abandoned streams included, leave the resident memory
// where the first ones put it.
TEST_F(E2EServe, ASoakOfManyRequestsLeavesMemoryFlat) {
  test::ScratchDir dir;
  test::ServerProcess server({"--model", moe_.string()}, dir / "serve.log");
  const int port = server.port();
  ASSERT_NE(port, 0);
  const std::vector<std::string> bodies = {
      R"({"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "logprobs": 3})",
      R"({"prompt": [[1, 365, 259, 372], [1, 90]], "max_tokens": 1, "echo": true, "logprobs": 1, "temperature": 0})",
      R"({"prompt": "x", "max_tokens": "many"})",
      R"({"prompt": "In the beginning", "max_tokens": 8, "svmoe_routing": true, "n": 3})",
      R"({"prompt": "x",)",
  };
  const auto round = [&](int requests) {
    for (int i = 0; i < requests; ++i) {
      const auto reply = post(port, "/v1/completions", bodies[static_cast<std::size_t>(i) % bodies.size()]);
      ASSERT_NE(reply.status, 0);
      ASSERT_LT(reply.status, 500) << reply.text;
      if (i % 25 == 0) leave_mid_stream(port, R"({"prompt": "Hi", "max_tokens": 32, "stream": true})");
    }
  };
  round(100);
  const long warm = server.rss_kib();
  round(400);
  const long after = server.rss_kib();
  std::cout << "serve soak: RSS " << warm / 1024.0 << " MiB after 100 requests, " << after / 1024.0
            << " MiB after 400 more; peak " << server.peak_rss_kib() / 1024.0 << " MiB\n";
  EXPECT_LT(after - warm, 16 * 1024) << "resident memory grew by " << (after - warm) << " KiB over 400 requests";
  EXPECT_TRUE(server.running());
}

// The README's curl examples, run against a server as written (the port replaced).
TEST_F(E2EServe, TheReadmesCurlExamplesRun) {
  const auto readme = read_text_file(fs::path(SVMOE_SOURCE_DIR) / "README.md");
  const auto begin = readme.find("<!-- serve-examples -->");
  const auto end = readme.find("<!-- /serve-examples -->");
  ASSERT_NE(begin, std::string::npos) << "README.md lost its serve examples";
  ASSERT_NE(end, std::string::npos);
  const std::string section = readme.substr(begin, end - begin);
  std::vector<std::string> commands;
  std::istringstream lines(section);
  std::string command;
  for (std::string line; std::getline(lines, line);) {
    if (command.empty() && line.rfind("curl ", 0) != 0) continue;
    command += (command.empty() ? "" : "\n") + line;
    if (command.back() != '\\') {  // a command ends at a line without a continuation
      commands.push_back(command);
      command.clear();
    }
  }
  ASSERT_GE(commands.size(), 4u) << section;
  test::ScratchDir dir;
  test::ServerProcess server({"--model", moe_.string(), "--model-name", "svmoe_lb"}, dir / "serve.log");
  ASSERT_NE(server.port(), 0);
  for (auto c : commands) {
    c = std::regex_replace(c, std::regex("127\\.0\\.0\\.1:8000"), "127.0.0.1:" + std::to_string(server.port()));
    test::write_text(dir / "example.sh", "set -euo pipefail\n" + c + "\n");
    const std::string run = "bash " + quoted(dir / "example.sh") + " > " + quoted(dir / "out.txt") + " 2>&1";
    const int status = std::system(run.c_str());
    const auto output = read_text_file(dir / "out.txt");
    EXPECT_EQ(status, 0) << c << "\n" << output;
    EXPECT_EQ(output.find("\"error\""), std::string::npos) << c << "\n" << output;
    EXPECT_FALSE(output.empty()) << c;
  }
}

}  // namespace svmoe
