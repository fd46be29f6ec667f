// The real svmoe executable on the bundled fixtures: what a user sees.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "svmoe/io/metrics_log.h"
#include "svmoe/io/run_directory.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/train/trainer.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using test::quoted;

TEST(E2ECli, HelpListsSubcommands) {
  const auto result = test::run_svmoe("--help");
  EXPECT_EQ(result.exit_code, 0);
  for (const char* command : {"inspect", "forward", "tokenize"}) {
    EXPECT_NE(result.output.find(command), std::string::npos) << result.output;
  }
}

TEST(E2ECli, UnknownSubcommandIsAUsageError) {
  const auto result = test::run_svmoe("fly");
  EXPECT_EQ(result.exit_code, 2) << result.output;
}

TEST(E2ECli, InspectPrintsConfigAndParameterTable) {
  const auto result = test::run_svmoe("inspect " + quoted(test::model_fixture("llama_gqa_tied_theta5e5")));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("4 heads, 2 KV heads"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos);
  EXPECT_NE(result.output.find("[32, 64]"), std::string::npos);
  EXPECT_NE(result.output.find("278,336 parameters"), std::string::npos) << result.output;
}

class E2EForward : public ::testing::TestWithParam<std::string> {};

TEST_P(E2EForward, MatchesTransformersLogits) {
  test::ScratchDir dir;
  const fs::path model = test::model_fixture(GetParam());
  const auto result = test::run_svmoe(
      "forward --model " + quoted(model) + " --input " + quoted(model / "expected.safetensors") + " --output " +
      quoted(dir / "out.safetensors") + " --compare " + quoted(model / "expected.safetensors") + " --device cpu");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("logits"), std::string::npos);
  const SafetensorsFile out = SafetensorsFile::open(dir / "out.safetensors");
  EXPECT_EQ(out.tensor("logits").sizes(), (std::vector<std::int64_t>{2, 24, 3000}));
  EXPECT_EQ(out.tensor("logits").scalar_type(), torch::kFloat32);
  if (GetParam().rfind("mixtral", 0) == 0) {  // MoE: every layer's router logits, compared too
    EXPECT_EQ(out.tensor("router_logits.1").size(0), 48);
    EXPECT_NE(result.output.find("router_logits.1"), std::string::npos) << result.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, E2EForward,
                         ::testing::Values("llama_mha_untied", "llama_gqa_tied_theta5e5", "llama_legacy_rope_config",
                                           "llama_bf16", "mixtral_8e_top2", "mixtral_4e_top1_gqa"));

TEST(E2EForward, ComparisonFailureHasItsOwnExitCode) {
  // llama_mha_untied's logits are not llama_bf16's.
  const auto result =
      test::run_svmoe("forward --model " + quoted(test::model_fixture("llama_mha_untied")) + " --input " +
                      quoted(test::model_fixture("llama_bf16") / "expected.safetensors") + " --compare " +
                      quoted(test::model_fixture("llama_bf16") / "expected.safetensors"));
  EXPECT_EQ(result.exit_code, 7) << result.output;
  EXPECT_NE(result.output.find("MISMATCH"), std::string::npos) << result.output;
}

TEST(E2EForward, ConfigFileAndOverridesAndPrintConfig) {
  test::ScratchDir dir;
  const fs::path model = test::model_fixture("llama_mha_untied");
  test::write_text(dir / "exp.yaml", "runtime:\n  device: cpu\nforward:\n  model: " + model.string() + "\n  input: " +
                                         (model / "expected.safetensors").string() + "\n  dtype: bfloat16\n");
  const auto printed = test::run_svmoe("forward -c " + quoted(dir / "exp.yaml") + " --set forward.dtype=float32 " +
                                       "--output out.safetensors --print-config");
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  EXPECT_NE(printed.output.find("\"dtype\": \"float32\""), std::string::npos) << printed.output;
  EXPECT_NE(printed.output.find("\"output\": \"out.safetensors\""), std::string::npos) << printed.output;

  const auto run = test::run_svmoe("forward -c " + quoted(dir / "exp.yaml") +
                                   " --set forward.dtype=float32 --compare " + quoted(model / "expected.safetensors"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
}

// runtime.expert_path picks how the MoE's experts run; each path gives transformers' logits.
TEST(E2EForward, EveryExpertPathGivesTransformersLogits) {
  const fs::path model = test::model_fixture("mixtral_8e_top2");
  for (const std::string path : {"loop", "grouped", "auto"}) {
    const auto result =
        test::run_svmoe("forward --model " + quoted(model) + " --input " + quoted(model / "expected.safetensors") +
                        " --compare " + quoted(model / "expected.safetensors") + " --set runtime.expert_path=" + path);
    EXPECT_EQ(result.exit_code, 0) << path << "\n" << result.output;
  }
  const auto bad = test::run_svmoe("forward --model " + quoted(model) + " --input " +
                                   quoted(model / "expected.safetensors") + " --set runtime.expert_path=fast");
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  EXPECT_NE(bad.output.find("runtime.expert_path"), std::string::npos) << bad.output;
}

TEST(E2EForward, BrokenConfigSaysWhereAndWhat) {
  test::ScratchDir dir;
  test::write_text(dir / "exp.yaml", "forward:\n  modle: x\n");
  const auto result = test::run_svmoe("forward -c " + quoted(dir / "exp.yaml"));
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("forward.modle"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("did you mean 'forward.model'"), std::string::npos) << result.output;
}

TEST(E2EForward, TruncatedCheckpointIsACleanError) {
  test::ScratchDir dir;
  fs::copy(test::model_fixture("llama_mha_untied"), dir / "ckpt");
  const std::string bytes = read_text_file(dir / "ckpt" / "model.safetensors");
  write_file_atomically(dir / "ckpt" / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  const auto result =
      test::run_svmoe("forward --model " + quoted(dir / "ckpt") + " --input " +
                      quoted(dir / "ckpt" / "expected.safetensors") + " --output " + quoted(dir / "o.safetensors"));
  EXPECT_EQ(result.exit_code, 4) << result.output;
  EXPECT_NE(result.output.find("model.safetensors"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("truncated"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir / "o.safetensors"));
}

TEST(E2EForward, MissingCudaIsAConfigErrorOnACpuBuild) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is present";
  const fs::path model = test::model_fixture("llama_mha_untied");
  const auto result =
      test::run_svmoe("forward --model " + quoted(model) + " --input " + quoted(model / "expected.safetensors") +
                      " --compare " + quoted(model / "expected.safetensors") + " --device cuda");
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("--device cpu"), std::string::npos) << result.output;
}

TEST(E2ETokenize, EncodesAndDecodes) {
  const fs::path tokenizer = test::data_dir() / "tokenizers" / "unigram";
  const auto encoded = test::run_svmoe("tokenize --tokenizer " + quoted(tokenizer) + " --text 'Hello 世界'");
  ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
  EXPECT_EQ(encoded.output.substr(0, 2), "1 ");  // BOS first
  const auto decoded = test::run_svmoe("tokenize --tokenizer " + quoted(tokenizer) + " --decode --text '" +
                                       encoded.output.substr(0, encoded.output.size() - 1) + "'");
  ASSERT_EQ(decoded.exit_code, 0) << decoded.output;
  EXPECT_EQ(decoded.output, "Hello 世界\n");
}

// A tokenizer.json built as LLM-jp's converter builds llm-jp-3's (regex normaliser, no
// pre-tokenizer, Unigram with byte fallback, 4 added tokens past the model's pieces) through
// tokenize, inspect, prepare, finetune, merge, train-router and eval, with models whose embedding has more rows
// than the tokenizer has ids (llm-jp-3-1.8b: 99,584 rows, 99,487 ids).
TEST(E2ETokenize, LlmJp3StyleTokenizerJsonRunsThroughTheRecipe) {
  test::ScratchDir dir;
  const fs::path tokenizer = test::data_dir() / "tokenizers" / "llm_jp_3";
  const auto expected = nlohmann::json::parse(read_text_file(tokenizer / "expected.json"));
  const std::string text = "第一条　この法律は、国民の健康の保持に寄与することを目的とする。";
  std::size_t index = 0;
  while (expected["strings"][index].get<std::string>().rfind(text, 0) != 0) ++index;
  std::string ids;
  for (const auto& id : expected["ids_with_special"][index])
    ids += (ids.empty() ? "" : " ") + std::to_string(id.get<int>());
  const auto encoded = test::run_svmoe("tokenize --tokenizer " + quoted(tokenizer) + " --text '" +
                                       expected["strings"][index].get<std::string>() + "'");
  ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
  EXPECT_EQ(encoded.output, ids + "\n");

  fs::create_directories(dir / "base");
  auto config = nlohmann::json::parse(read_text_file(test::model_fixture("llama_mha_untied") / "config.json"));
  config["vocab_size"] = 3072;
  test::write_text(dir / "base" / "config.json", config.dump(2));
  const auto prepared =
      test::run_svmoe("prepare --corpus " + quoted(test::example_ci_corpus()) + " --tokenizer " + quoted(tokenizer) +
                      " --output " + quoted(dir / "dataset") + " --subdomains 2 --log-level warn");
  ASSERT_EQ(prepared.exit_code, 0) << prepared.output;
  const auto manifest = nlohmann::json::parse(read_text_file(dir / "dataset" / "manifest.json"));
  EXPECT_EQ(manifest["vocab_size"], 3004);
  const auto trained = test::run_svmoe("finetune --model " + quoted(dir / "base") + " --dataset " +
                                       quoted(dir / "dataset") + " --output " + quoted(dir / "run") +
                                       " --steps 4 --set finetune.init=random --set train.sequence_length=32"
                                       " --set train.micro_batch=2 --set train.eval_every=0 --log-level warn");
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const auto inspect = test::run_svmoe("inspect " + quoted(dir / "run" / "final"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("Unigram model, 3000 pieces, byte fallback; 7 added tokens"), std::string::npos)
      << inspect.output;
  EXPECT_NE(inspect.output.find("svmoe reads it"), std::string::npos) << inspect.output;
  // Merge (two copies) and router training against TF-IDF targets of 3,004 ids for 3,072 rows.
  const auto merged =
      test::run_svmoe("merge --experts " + quoted(dir / "run" / "final") + " " + quoted(dir / "run" / "final") +
                      " --output " + quoted(dir / "moe") + " --log-level warn");
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  const auto routed = test::run_svmoe("train-router --model " + quoted(dir / "moe") + " --dataset " +
                                      quoted(dir / "dataset") + " --output " + quoted(dir / "router") +
                                      " --steps 2 --set train.sequence_length=32 --set train.micro_batch=2"
                                      " --set train.eval_every=0 --log-level warn");
  ASSERT_EQ(routed.exit_code, 0) << routed.output;
  test::write_text(dir / "eval.yaml", "eval:\n  models: [{name: dense, path: " + (dir / "run" / "final").string() +
                                          "}, {name: svmoe, path: " + (dir / "router" / "final").string() +
                                          "}]\n  dataset: " + (dir / "dataset").string() + "\n  output: " +
                                          (dir / "eval").string() + "\n  max_documents: 2\n  context_length: 32\n");
  const auto evaluated = test::run_svmoe("eval -c " + quoted(dir / "eval.yaml") + " --log-level warn");
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.output;
  const std::string tables = read_text_file(dir / "eval" / "tables.md");
  EXPECT_NE(tables.find("dense"), std::string::npos) << tables;
  EXPECT_NE(tables.find("svmoe"), std::string::npos) << tables;
}

TEST(E2ECli, InspectSaysWhyATokenizerCannotBeRead) {
  test::ScratchDir dir;
  for (const auto& entry : fs::directory_iterator(test::model_fixture("llama_mha_untied"))) {
    fs::copy_file(entry.path(), dir / entry.path().filename());
  }
  test::write_text(dir / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  const auto result = test::run_svmoe("inspect " + quoted(dir.path()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("svmoe cannot read it"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("'WordPiece' model"), std::string::npos) << result.output;
}

}  // namespace svmoe

namespace svmoe {

TEST(E2EPrepare, ExampleCorpusTwiceGivesTheSameDataset) {
  test::ScratchDir dir;
  test::write_text(dir / "exp.yaml", "prepare:\n  corpus: " + test::example_ci_corpus().string() +
                                         "\n  tokenizer: " + (test::data_dir() / "tokenizers" / "unigram").string() +
                                         "\n  output: " + (dir / "dataset").string() +
                                         "\n  num_subdomains: 4\n  pinned_categories: [devicetree]\n");
  const auto first = test::run_svmoe("prepare -c " + quoted(dir / "exp.yaml"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("Table 1"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("| 0 | devicetree |"), std::string::npos) << first.output;
  const std::string manifest = read_text_file(dir / "dataset" / "manifest.json");
  const std::string tokens = read_text_file(dir / "dataset" / "subdomain_2" / "train.bin");
  const auto second = test::run_svmoe("prepare -c " + quoted(dir / "exp.yaml"));
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(read_text_file(dir / "dataset" / "manifest.json"), manifest);
  EXPECT_EQ(read_text_file(dir / "dataset" / "subdomain_2" / "train.bin"), tokens);
}

TEST(E2EPrepare, UserMistakesGetClearErrors) {
  test::ScratchDir dir;
  const std::string base = "prepare --corpus " + quoted(test::example_ci_corpus()) + " --tokenizer " +
                           quoted(test::data_dir() / "tokenizers" / "unigram") + " --output " + quoted(dir / "out");
  auto result = test::run_svmoe(base + " --subdomains 40");
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("only 12 categories"), std::string::npos) << result.output;

  result = test::run_svmoe(base + " --set prepare.pinned_categories=[networkin]");
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("did you mean 'networking'"), std::string::npos) << result.output;

  test::write_text(dir / "bad.jsonl",
                   "{\"text\": \"fine\", \"category\": \"a\"}\n{\"text\": \"oops\", \"category\": }\n");
  result = test::run_svmoe("prepare --corpus " + quoted(dir / "bad.jsonl") + " --tokenizer " +
                           quoted(test::data_dir() / "tokenizers" / "unigram") + " --output " + quoted(dir / "out"));
  EXPECT_EQ(result.exit_code, 4) << result.output;
  EXPECT_NE(result.output.find("bad.jsonl' line 2"), std::string::npos) << result.output;

  test::write_text(dir / "empty.jsonl", "\n");
  result = test::run_svmoe("prepare --corpus " + quoted(dir / "empty.jsonl") + " --tokenizer " +
                           quoted(test::data_dir() / "tokenizers" / "unigram") + " --output " + quoted(dir / "out"));
  EXPECT_EQ(result.exit_code, 4) << result.output;
  EXPECT_NE(result.output.find("no documents"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir / "out"));
}

}  // namespace svmoe

namespace svmoe {

TEST(E2EPrepare, TrainsATokenizerOnTheCorpusWhenAsked) {
  test::ScratchDir dir;
  const auto result = test::run_svmoe(
      "prepare --corpus " + quoted(test::example_ci_corpus()) + " --output " + quoted(dir / "dataset") +
      " --subdomains 3" + " --set prepare.tokenizer_train.enabled=true --set prepare.tokenizer_train.vocab_size=600");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  ASSERT_TRUE(fs::exists(dir / "dataset" / "tokenizer.model"));
  const auto manifest = nlohmann::json::parse(read_text_file(dir / "dataset" / "manifest.json"));
  EXPECT_EQ(manifest["vocab_size"], 600);
  EXPECT_EQ(manifest["tokenizer"]["files"], "tokenizer.model");
  EXPECT_EQ(manifest["tokenizer"]["source"],
            "trained on the corpus (prepare.tokenizer_train)");  // not DATASET.partial/...
  const auto tokens = test::run_svmoe("tokenize --tokenizer " + quoted(dir / "dataset" / "tokenizer.model") +
                                      " --decode --text '1 300 301 302'");
  EXPECT_EQ(tokens.exit_code, 0) << tokens.output;
}

}  // namespace svmoe

namespace svmoe {

TEST(E2EMerge, MergesExpertsAndForwardRunsTheMoe) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  const auto merged = test::run_svmoe("merge --experts " + quoted(dense) + " " + quoted(dense) + " --output " +
                                      quoted(dir / "moe") + " --top-k 1");
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  // The merged MoE of identical experts reproduces the dense model's transformers logits.
  const auto result =
      test::run_svmoe("forward --model " + quoted(dir / "moe") + " --input " + quoted(dense / "expected.safetensors") +
                      " --compare " + quoted(dense / "expected.safetensors"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const auto inspect = test::run_svmoe("inspect " + quoted(dir / "moe"));
  EXPECT_NE(inspect.output.find("2 per layer, top-1"), std::string::npos) << inspect.output;
}

// svmoe merge upcycles one dense model into a plain Mixtral checkpoint that svmoe forward runs.
TEST(E2EMerge, DropUpcyclingWritesAMixtralThatForwardRuns) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  const auto merged = test::run_svmoe("merge --method drop_upcycling --base-model " + quoted(dense) +
                                      " --num-experts 4 --drop-ratio 0.5 --output " + quoted(dir / "moe"));
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  const auto inspect = test::run_svmoe("inspect " + quoted(dir / "moe"));
  EXPECT_NE(inspect.output.find("4 per layer, top-2"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("built by    svmoe merge, method drop_upcycling, drop_ratio 0.5; routers normal"),
            std::string::npos)
      << inspect.output;
  const auto result =
      test::run_svmoe("forward --model " + quoted(dir / "moe") + " --input " + quoted(dense / "expected.safetensors") +
                      " --output " + quoted(dir / "logits.safetensors"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // Half of each expert's neurons re-drawn: no longer the dense model's logits.
  const auto compared =
      test::run_svmoe("forward --model " + quoted(dir / "moe") + " --input " + quoted(dense / "expected.safetensors") +
                      " --compare " + quoted(dense / "expected.safetensors"));
  EXPECT_NE(compared.exit_code, 0) << compared.output;
  const auto missing = test::run_svmoe("merge --method naive --num-experts 4 --output " + quoted(dir / "x"));
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_NE(missing.output.find("merge.base_model"), std::string::npos) << missing.output;
}

TEST(E2EMerge, ASharedExpertWritesAQwen2MoeThatForwardRuns) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  const auto merged = test::run_svmoe("merge --method naive --base-model " + quoted(dense) +
                                      " --num-experts 4 --shared-expert base --output " + quoted(dir / "moe"));
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  const auto inspect = test::run_svmoe("inspect " + quoted(dir / "moe"));
  EXPECT_NE(inspect.output.find("model       qwen2_moe (MoE)"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("one shared expert a layer (ffn 160) behind a sigmoid gate"), std::string::npos)
      << inspect.output;
  EXPECT_NE(inspect.output.find("method naive, shared expert from base"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("config.json implies"), std::string::npos) << inspect.output;
  const auto result =
      test::run_svmoe("forward --model " + quoted(dir / "moe") + " --input " + quoted(dense / "expected.safetensors") +
                      " --output " + quoted(dir / "logits.safetensors"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto soft = test::run_svmoe("merge --method naive --base-model " + quoted(dense) +
                                    " --num-experts 4 --shared-expert mean --output " + quoted(dir / "soft") +
                                    " --set merge.moe_kind=soft");
  EXPECT_EQ(soft.exit_code, 3) << soft.output;
  EXPECT_NE(soft.output.find("merge.shared_expert"), std::string::npos) << soft.output;
}

TEST(E2EMerge, ACartesianMoeIsSvmoesOwnFormatThatForwardRuns) {
  test::ScratchDir dir;
  const fs::path dense = test::model_fixture("llama_mha_untied");
  const auto merged =
      test::run_svmoe("merge --method drop_upcycling --base-model " + quoted(dense) + " --num-experts 4 --output " +
                      quoted(dir / "moe") + " --set merge.moe_kind=cartesian");
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  const auto inspect = test::run_svmoe("inspect " + quoted(dir / "moe"));
  EXPECT_NE(inspect.output.find("CartesianMoE: two routed sub-layers a layer, 4 sub-experts each (ffn 80), top-2 each"),
            std::string::npos)
      << inspect.output;
  EXPECT_NE(inspect.output.find("drop_ratio 0.5, cartesian MoE"), std::string::npos) << inspect.output;
  const auto result =
      test::run_svmoe("forward --model " + quoted(dir / "moe") + " --input " + quoted(dense / "expected.safetensors") +
                      " --output " + quoted(dir / "logits.safetensors"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(SafetensorsFile::open(dir / "logits.safetensors").contains("router_logits.3"));  // 2 layers x (A, B)
}

TEST(E2EMerge, OneExpertIsAClearError) {
  const auto result =
      test::run_svmoe("merge --experts " + quoted(test::model_fixture("llama_mha_untied")) + " --output /tmp/x");
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("at least 2"), std::string::npos) << result.output;
}

}  // namespace svmoe

namespace svmoe {

// Pretraining a tiny model from scratch on the example corpus: the validation loss falls
// clearly; SIGTERM stops it with a checkpoint and exit code 75; running again resumes.
TEST(E2EFinetune, TrainsFromScratchStopsOnSigtermAndResumes) {
  test::ScratchDir dir;
  const auto prepared = test::run_svmoe("prepare --corpus " + quoted(test::example_ci_corpus()) + " --tokenizer " +
                                        quoted(test::data_dir() / "tokenizers" / "unigram") + " --output " +
                                        quoted(dir / "dataset") + " --subdomains 2 --log-level warn");
  ASSERT_EQ(prepared.exit_code, 0) << prepared.output;
  const std::string base = std::string(SVMOE_BINARY) + " finetune --model " +
                           quoted(test::model_fixture("llama_mha_untied")) + " --dataset " + quoted(dir / "dataset") +
                           " --output " + quoted(dir / "run") +
                           " --set finetune.init=random --set train.sequence_length=32 --set train.micro_batch=4"
                           " --set train.learning_rate=3e-3 --set train.warmup_steps=5 --set train.eval_every=0"
                           " --set train.log_every=5";

  // A long run, stopped by SIGTERM once it is training.
  const std::string long_run = base + " --steps 100000 > " + quoted(dir / "log.txt") + " 2>&1";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + long_run).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 600 && !fs::exists(dir / "run" / "metrics.jsonl"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // A second writer of the same run directory fails at once, naming the first (docs/reliability.md).
  const auto second = test::run_svmoe(base.substr(std::string(SVMOE_BINARY).size() + 1) + " --steps 10");
  EXPECT_EQ(second.exit_code, 8) << second.output;
  EXPECT_NE(second.output.find("is being written by another svmoe process"), std::string::npos) << second.output;
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << read_text_file(dir / "log.txt");
  EXPECT_EQ(WEXITSTATUS(status), 75) << read_text_file(dir / "log.txt");
  const auto checkpoint = RunDirectory(dir / "run").latest_complete_checkpoint();
  ASSERT_TRUE(checkpoint.has_value()) << read_text_file(dir / "log.txt");

  // Resume and finish a short run: the validation loss is far below the untrained one, ln(3000) = 8.0.
  const auto step = nlohmann::json::parse(read_text_file(*checkpoint / "trainer_state.json"))["step"].get<int>();
  // A run killed with -9 leaves lines of steps past its last checkpoint, which the resumed run
  // does again: they must not appear twice.
  {
    std::ofstream killed(dir / "run" / "metrics.jsonl", std::ios::app);
    killed << nlohmann::json{{"step", step + 1}, {"loss", 99.0}}.dump() << "\n";
  }
  const auto resumed =
      test::run_svmoe(base.substr(std::string(SVMOE_BINARY).size() + 1) + " --steps " + std::to_string(step + 40));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from"), std::string::npos) << resumed.output;
  EXPECT_TRUE(fs::exists(dir / "run" / "final" / "model.safetensors"));
  double valid_loss = 100;
  std::int64_t last_step = 0;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto json = nlohmann::json::parse(line);
    if (json.contains("valid_loss")) valid_loss = json["valid_loss"].get<double>();
    if (json.contains("loss")) {
      EXPECT_GT(json["step"].get<std::int64_t>(), last_step) << line;  // each step once, in order
      EXPECT_NE(json["loss"].get<double>(), 99.0) << line;
      last_step = json["step"].get<std::int64_t>();
    }
  }
  EXPECT_EQ(last_step, step + 40);
  EXPECT_LT(valid_loss, 6.5);
}

}  // namespace svmoe

namespace svmoe {

// svmoe plan on the paper's config (with a config.json of llm-jp-3-1.8b's shape): every step fits
// on 80 GB GPUs with the config's ZeRO-1; without it the four MoE models do not, and it says so.
TEST(E2EPlan, ThePapersConfigFitsOn80GBGpusWithZero1) {
  const std::string base = "plan -c " +
                           quoted(fs::path(SVMOE_SOURCE_DIR) / "configs" / "paper" / "llm-jp-3-1.8b.yaml") +
                           " --set run.base_model=" + quoted(test::model_fixture("llm_jp_3_1_8b_shape"));
  const auto fits = test::run_svmoe(base);
  ASSERT_EQ(fits.exit_code, 0) << fits.output;
  EXPECT_NE(fits.output.find("btx           8  1x4096 Z1      9.27B      9.27B"), std::string::npos) << fits.output;
  EXPECT_EQ(fits.output.find(" NO"), std::string::npos) << fits.output;
  const auto without = test::run_svmoe(base + " --set finetune.train.zero_stage=0");
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_NE(without.output.find("btx, btx_lb, svmoe, svmoe_lb need 157.0 GiB of 72.0:\n  - set train.zero_stage: 1"),
            std::string::npos)
      << without.output;
}

}  // namespace svmoe

namespace svmoe {

// svmoe bench --preset tiny on the CPU: the table and the JSON with the four measurements.
TEST(E2EBench, TinyPresetPrintsTheTableAndJson) {
  test::ScratchDir dir;
  const auto result =
      test::run_svmoe("bench --preset tiny --device cpu --warmup 0 --repetitions 1 --expert-path grouped --json " +
                      quoted(dir / "bench.json"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("train_step"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("MFU"), std::string::npos) << result.output;
  const auto json = nlohmann::json::parse(read_text_file(dir / "bench.json"));
  EXPECT_EQ(json["preset"], "tiny");
  EXPECT_EQ(json["measurements"].size(), 5u);
  EXPECT_EQ(json["expert_path"], "grouped");
  const auto bad = test::run_svmoe("bench --preset huge");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  const auto bad_path = test::run_svmoe("bench --expert-path fast");
  EXPECT_EQ(bad_path.exit_code, 2) << bad_path.output;
  EXPECT_NE(bad_path.output.find("fast"), std::string::npos) << bad_path.output;
}

}  // namespace svmoe

namespace svmoe {

// A real fine-tune of an MoE writes its metrics as TensorBoard events (runtime.tensorboard is on
// by default): the independent reader (npm tfrecord + protobufjs) finds one event per
// metrics.jsonl line with its step and every number of the line, the per-layer routing
// statistics and the validation loss included; with runtime.tensorboard=false none is written.
TEST(TensorBoardReferenceE2E, AnMoeFinetuneWritesEveryMetricsLineAsEvents) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  const fs::path moe = test::tiny_moe(dir.path(), 2, 1);
  const std::string finetune = "finetune --model " + quoted(moe) + " --dataset " + quoted(dataset) +
                               " --steps 4 --set train.sequence_length=32 --set train.micro_batch=2"
                               " --set train.log_every=1 --set train.eval_every=2 --set train.eval_batches=1"
                               " --log-level warn --output ";
  const auto trained = test::run_svmoe(finetune + quoted(dir / "run"));
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const RunDirectory run(dir / "run");
  const auto lines = run.read_metrics();
  ASSERT_EQ(lines.size(), 6u);  // 4 logging lines, 2 validations
  const auto files = run.tensorboard_event_files();
  ASSERT_EQ(files.size(), 1u);
  const nlohmann::json events = test::tensorboard_reference(files)[0]["events"];
  ASSERT_EQ(events.size(), lines.size() + 1);
  std::set<std::string> tags;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& event = events[i + 1];
    EXPECT_EQ(event["step"], lines[i]["step"]);
    std::map<std::string, float> read;
    for (const auto& value : event["values"])
      read[value["tag"].get<std::string>()] = value["simple_value"].get<float>();
    for (const auto& scalar : tensorboard_scalars(lines[i])) {
      tags.insert(scalar.tag);
      ASSERT_TRUE(read.count(scalar.tag)) << scalar.tag << " missing at step " << event["step"];
      EXPECT_EQ(read[scalar.tag], static_cast<float>(scalar.value)) << scalar.tag;
    }
    EXPECT_EQ(read.size(), tensorboard_scalars(lines[i]).size());
  }
  for (const std::string tag :
       {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/memory_mb",
        "routing/router_entropy/layer_1", "routing/expert_fraction/layer_0/expert_1", "valid/loss", "valid/ppl"}) {
    EXPECT_TRUE(tags.count(tag)) << tag;
  }
  const auto quiet = test::run_svmoe(finetune + quoted(dir / "quiet") + " --set runtime.tensorboard=false");
  ASSERT_EQ(quiet.exit_code, 0) << quiet.output;
  EXPECT_TRUE(RunDirectory(dir / "quiet").tensorboard_event_files().empty());
  EXPECT_EQ(RunDirectory(dir / "quiet").read_metrics().size(), 6u);
}

}  // namespace svmoe
