// svmoe serve driven by the official OpenAI client for Node (npm `openai`, which ctest installs
// first: scripts/reference/openai-client.sh): models, a greedy completion with log-probs, the
// loglikelihood request lm-evaluation-harness sends (token ids, echo, logprobs 1, max_tokens 1)
// whose log-probs must equal the model's, the same completion streamed, and the errors the client
// raises; then the bounded load test (scripts/serve_load.js) with no failed request.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <regex>

#include "server_process.h"
#include "svmoe/io/inference_model.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Runs the client script with ARGUMENTS; its stdout.
std::string run_client(const std::string& arguments, const fs::path& output) {
  const std::string command = "bash '" + std::string(SVMOE_SOURCE_DIR) + "/scripts/reference/openai-client.sh' " +
                              arguments + " > '" + output.string() + "'";
  const int status = std::system(command.c_str());
  const auto text = fs::exists(output) ? read_text_file(output) : std::string();
  if (status != 0)
    ADD_FAILURE() << "the OpenAI client script failed (node and npm are needed): " << command << "\n" << text;
  return text;
}

}  // namespace

TEST(OpenAIClientReference, TheOfficialClientScoresStreamsAndGetsOpenAIsErrors) {
  test::ScratchDir dir;
  const fs::path moe = test::tiny_moe(dir.path(), 4, 2);
  test::ServerProcess server({"--model", moe.string(), "--api-key", "sesame"}, dir / "serve.log");
  ASSERT_NE(server.port(), 0);
  const auto text = run_client("openai_client_check.js " + server.url() + " moe sesame", dir / "client.json");
  const auto out = Json::parse(text);

  EXPECT_EQ(out["models"], Json::array({"moe"}));
  const auto& greedy = out["greedy"]["choices"][0];
  const auto generated = out["greedy"]["usage"]["completion_tokens"].get<std::size_t>();
  EXPECT_EQ(greedy["logprobs"]["tokens"].size(), generated);
  EXPECT_EQ(greedy["logprobs"]["top_logprobs"][0].size() >= 2, true) << greedy.dump();

  // Streamed, the same greedy request gives the same text, finish reason and usage.
  EXPECT_EQ(out["stream"]["text"], greedy["text"]);
  EXPECT_EQ(out["stream"]["finish"], greedy["finish_reason"]);
  EXPECT_EQ(out["stream"]["usage"], out["greedy"]["usage"]);
  EXPECT_GE(out["stream"]["chunks"].get<int>(), 2);

  // The loglikelihood request: a log-prob for every token but the first, equal to the model's.
  std::vector<std::int64_t> ids = out["score_ids"].get<std::vector<std::int64_t>>();
  const auto& score = out["score"]["choices"][0]["logprobs"];
  ASSERT_EQ(score["token_logprobs"].size(), ids.size() + 1) << score.dump();
  EXPECT_TRUE(score["token_logprobs"][0].is_null());
  CausalLM model = load_model_for_inference(moe, {});
  torch::NoGradGuard no_grad;
  const auto expected =
      torch::log_softmax(model->forward(torch::tensor(ids).view({1, -1})).logits[0].to(torch::kFloat64), -1);
  for (std::size_t t = 1; t < ids.size(); ++t) {
    EXPECT_NEAR(score["token_logprobs"][t].get<double>(),
                expected[static_cast<std::int64_t>(t) - 1][ids[t]].item<double>(), 1e-4)
        << "token " << t;
  }
  // lm-evaluation-harness's is_greedy reads top_logprobs: the greedy token is the likeliest.
  const auto& last_top = score["top_logprobs"][ids.size()];
  std::string likeliest;
  double best = -1e300;
  for (const auto& [token, logprob] : last_top.items()) {
    if (logprob.get<double>() > best) best = logprob.get<double>(), likeliest = token;
  }
  EXPECT_EQ(likeliest, score["tokens"][ids.size()].get<std::string>());

  const auto& errors = out["errors"];
  EXPECT_EQ(errors["unknown_field"]["status"], 400) << errors.dump();
  EXPECT_EQ(errors["unknown_field"]["param"], "max_token");
  EXPECT_EQ(errors["empty_prompt"]["status"], 400);
  EXPECT_EQ(errors["wrong_model"]["status"], 404);
  EXPECT_EQ(errors["wrong_model"]["code"], "model_not_found");
  EXPECT_EQ(errors["huge_max_tokens"]["status"], 400);
  EXPECT_EQ(errors["ids_out_of_range"]["status"], 400);
  EXPECT_EQ(errors["wrong_key"]["status"], 401);
  EXPECT_EQ(errors["wrong_key"]["code"], "invalid_api_key");
  EXPECT_TRUE(server.running());
}

// The load test, bounded: 4 clients for 6 seconds of scoring and 32-token generations, no error.
TEST(OpenAIClientReference, ABoundedLoadTestHasNoFailedRequest) {
  test::ScratchDir dir;
  const fs::path moe = test::tiny_moe(dir.path(), 4, 2);
  test::ServerProcess server({"--model", moe.string()}, dir / "serve.log");
  ASSERT_NE(server.port(), 0);
  const auto text =
      run_client("'" + std::string(SVMOE_SOURCE_DIR) + "/scripts/serve_load.js' --url " + server.url() +
                     " --model moe --clients 4 --seconds 6 --max-tokens 32 --pid " + std::to_string(server.pid()),
                 dir / "load.txt");
  std::cout << text;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(text, match, std::regex("serve_load: (\\{.*\\})"))) << text;
  const auto summary = Json::parse(match[1].str());
  EXPECT_EQ(summary["errors"].get<int>(), 0) << summary.dump();
  EXPECT_GT(summary["scoring"]["requests"].get<int>(), 0);
  EXPECT_GT(summary["generation"]["requests"].get<int>(), 0);
  EXPECT_GT(summary["peak_rss_mib"].get<double>(), 0.0);
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.log();
}

}  // namespace svmoe
