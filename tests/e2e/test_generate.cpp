// svmoe generate as a user runs it: a merged MoE with its tokenizer, prompts from flags and a
// file, the printed completions and routing, the JSONL output, and the errors of bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using test::quoted;

namespace {

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

}  // namespace

TEST(E2EGenerate, PrintsCompletionsAndRoutingAndWritesJsonl) {
  test::ScratchDir dir;
  const fs::path moe = test::tiny_moe(dir.path(), 4, 2);
  test::write_text(dir / "prompts.jsonl", "{\"prompt\": \"In the beginning\"}\n\n");
  const std::string common = "generate --model " + quoted(moe) + " --prompt 'Once upon a time' --prompts-file " +
                             quoted(dir / "prompts.jsonl") + " --max-new-tokens 6 --device cpu --routing";
  const auto cached = test::run_svmoe(common + " --output " + quoted(dir / "cached.jsonl"));
  ASSERT_EQ(cached.exit_code, 0) << cached.output;
  EXPECT_NE(cached.output.find("[1/2] prompt ("), std::string::npos) << cached.output;
  EXPECT_NE(cached.output.find("[2/2] completion ("), std::string::npos) << cached.output;
  EXPECT_NE(cached.output.find("layer 1: "), std::string::npos) << cached.output;
  EXPECT_NE(cached.output.find("tokens/s); generation: "), std::string::npos) << cached.output;

  const auto records = read_jsonl(dir / "cached.jsonl");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["prompt"].get<std::string>(), "Once upon a time");
  EXPECT_EQ(records[1]["prompt"].get<std::string>(), "In the beginning");
  for (const auto& record : records) {
    const auto tokens = record["completion_tokens"].get<std::size_t>();
    EXPECT_GE(tokens, 1u);
    EXPECT_LE(tokens, 6u);
    EXPECT_EQ(record["finish_reason"].get<std::string>(), tokens == 6 ? "length" : "stop");
    ASSERT_EQ(record["routing"].size(), tokens);
    const auto& first = record["routing"][0];
    EXPECT_EQ(first["routing"]["layer 0"]["experts"].size(), 2u) << first.dump();
    EXPECT_EQ(first["routing"]["layer 1"]["weights"].size(), 2u) << first.dump();
  }

  // Recomputing instead of caching writes the same completions.
  const auto recomputed = test::run_svmoe(common + " --no-kv-cache --output " + quoted(dir / "recomputed.jsonl"));
  ASSERT_EQ(recomputed.exit_code, 0) << recomputed.output;
  EXPECT_NE(recomputed.output.find("KV cache off"), std::string::npos) << recomputed.output;
  EXPECT_EQ(read_text_file(dir / "recomputed.jsonl"), read_text_file(dir / "cached.jsonl"));
}

TEST(E2EGenerate, BadInputIsAClearError) {
  test::ScratchDir dir;
  const fs::path moe = test::tiny_moe(dir.path(), 2, 1);
  const std::string model = "generate --device cpu --model " + quoted(moe);

  const auto no_prompt = test::run_svmoe(model);
  EXPECT_NE(no_prompt.exit_code, 0);
  EXPECT_NE(no_prompt.output.find("give --prompt TEXT"), std::string::npos) << no_prompt.output;

  test::write_text(dir / "bad.jsonl", "{\"prompt\": \"fine\"}\n{\"text\": \"no prompt key\"}\n");
  const auto bad_file = test::run_svmoe(model + " --prompts-file " + quoted(dir / "bad.jsonl"));
  EXPECT_NE(bad_file.exit_code, 0);
  EXPECT_NE(bad_file.output.find("bad.jsonl' line 2 has no \"prompt\" string"), std::string::npos) << bad_file.output;

  const auto too_long = test::run_svmoe(model + " --prompt hello --max-new-tokens 500");
  EXPECT_NE(too_long.exit_code, 0);
  EXPECT_NE(too_long.output.find("max_position_embeddings 128"), std::string::npos) << too_long.output;

  const auto bad_top_p = test::run_svmoe(model + " --prompt hello --top-p 0");
  EXPECT_NE(bad_top_p.exit_code, 0);
  EXPECT_NE(bad_top_p.output.find("generate.top_p"), std::string::npos) << bad_top_p.output;
}

}  // namespace svmoe
