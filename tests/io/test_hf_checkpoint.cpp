#include "svmoe/io/hf_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "svmoe/model/causal_lm.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

CausalLM load_model(const fs::path& directory, torch::ScalarType dtype) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  CausalLM model(checkpoint.config);
  model->to(dtype);
  load_weights(*model, checkpoint);
  return model;
}

// The shard files an index lists, sorted.
std::vector<std::string> shard_files(const fs::path& directory) {
  const auto index = nlohmann::json::parse(read_text_file(directory / "model.safetensors.index.json"));
  std::set<std::string> files;
  for (const auto& item : index.at("weight_map").items()) files.insert(item.value().get<std::string>());
  return {files.begin(), files.end()};
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const CheckpointTensors left = CheckpointTensors::open(a);
  const CheckpointTensors right = CheckpointTensors::open(b);
  ASSERT_EQ(left.names(), right.names());
  for (const auto& name : left.names()) {
    const auto x = left.tensor(name);
    const auto y = right.tensor(name);
    EXPECT_EQ(x.scalar_type(), y.scalar_type()) << name;
    EXPECT_EQ(x.sizes(), y.sizes()) << name;
    // Bit-identical: compare the raw bytes, not the values.
    EXPECT_EQ(std::memcmp(x.contiguous().data_ptr(), y.contiguous().data_ptr(), stored_bytes(x)), 0) << name;
  }
}

}  // namespace

TEST(HfCheckpoint, LoadSaveRoundTripIsBitIdenticalInEachDtype) {
  for (const std::string name : {"llama_bf16", "llama_mha_untied", "llama_gqa_tied_theta5e5"}) {
    test::ScratchDir dir;
    const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture(name));
    const auto dtype = name == "llama_bf16" ? torch::kBFloat16 : torch::kFloat32;
    CausalLM model = load_model(test::model_fixture(name), dtype);
    save_hf_checkpoint(dir / "out", checkpoint.config, named_tensors(*model), {}, checkpoint.raw_config);
    expect_same_tensors(test::model_fixture(name), dir / "out");
    EXPECT_FALSE(fs::exists(dir / "out.partial"));
  }
}

TEST(HfCheckpoint, ShardedWriteAndReadAgree) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model = load_model(test::model_fixture("llama_mha_untied"), torch::kFloat32);
  SaveOptions options;
  options.max_shard_bytes = 300 * 1024;
  options.copy_tokenizer_from = test::data_dir() / "tokenizers" / "unigram";
  save_hf_checkpoint(dir / "sharded", checkpoint.config, named_tensors(*model), options, checkpoint.raw_config);
  EXPECT_TRUE(fs::exists(dir / "sharded" / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "sharded" / "model.safetensors"));
  const auto shards = shard_files(dir / "sharded");
  ASSERT_GT(shards.size(), 1u);
  const std::string last =
      "-of-" + std::string(5 - std::to_string(shards.size()).size(), '0') + std::to_string(shards.size());
  for (std::size_t i = 0; i < shards.size(); ++i) {
    EXPECT_NE(shards[i].find(last + ".safetensors"), std::string::npos) << shards[i];
    EXPECT_TRUE(fs::exists(dir / "sharded" / shards[i]));
    // No shard exceeds the limit unless it holds one tensor larger than the limit.
    const SafetensorsFile file = SafetensorsFile::open(dir / "sharded" / shards[i]);
    if (file.entries().size() > 1) {
      EXPECT_LE(fs::file_size(dir / "sharded" / shards[i]), options.max_shard_bytes + 4096);
    }
  }
  EXPECT_TRUE(fs::exists(dir / "sharded" / "tokenizer.json"));
  expect_same_tensors(test::model_fixture("llama_mha_untied"), dir / "sharded");

  // The sharded copy gives the same logits.
  CausalLM again = load_model(dir / "sharded", torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto ids = torch::arange(10, torch::kInt64).view({1, 10});
  EXPECT_TRUE(torch::equal(model->forward(ids).logits, again->forward(ids).logits));
}

TEST(HfCheckpoint, SaveReplacesAnExistingDirectoryWhole) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model = load_model(test::model_fixture("llama_mha_untied"), torch::kFloat32);
  fs::create_directories(dir / "out");
  write_file_atomically(dir / "out" / "model.safetensors.index.json", "{}");  // stale index from an older save
  save_hf_checkpoint(dir / "out", checkpoint.config, named_tensors(*model), {}, checkpoint.raw_config);
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors.index.json"));
  expect_same_tensors(test::model_fixture("llama_mha_untied"), dir / "out");
}

// A write that fails half-way (here: an exception after the weights) leaves the directory as it
// was and no DIR.partial behind; only commit() replaces it.
TEST(HfCheckpoint, AWriterThatDoesNotCommitLeavesTheOldDirectory) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  CausalLM model = load_model(test::model_fixture("llama_mha_untied"), torch::kFloat32);
  save_hf_checkpoint(dir / "out", checkpoint.config, named_tensors(*model), {}, checkpoint.raw_config);
  const std::string config_before = read_text_file(dir / "out" / "config.json");
  ModelConfig changed = checkpoint.config;
  changed.rms_norm_eps *= 2;
  try {
    HfCheckpointWriter writer(dir / "out");
    writer.write_config(changed, checkpoint.raw_config);
    writer.write_tensors(named_tensors(*model), 5ull << 30);
    writer.write_json("svmoe_merge.json", {{"method", "btx"}});
    EXPECT_TRUE(fs::exists(dir / "out.partial" / "svmoe_merge.json"));
    throw std::runtime_error("disk full");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(dir / "out.partial"));
  EXPECT_EQ(read_text_file(dir / "out" / "config.json"), config_before);
  EXPECT_FALSE(fs::exists(dir / "out" / "svmoe_merge.json"));
  {
    HfCheckpointWriter writer(dir / "out");
    writer.write_config(changed, checkpoint.raw_config);
    writer.write_tensors(named_tensors(*model), 5ull << 30);
    writer.write_json("svmoe_merge.json", {{"method", "btx"}});
    writer.commit();
  }
  EXPECT_NE(read_text_file(dir / "out" / "config.json"), config_before);
  EXPECT_TRUE(fs::exists(dir / "out" / "svmoe_merge.json"));
  EXPECT_FALSE(fs::exists(dir / "out.partial"));
  expect_same_tensors(test::model_fixture("llama_mha_untied"), dir / "out");
}

TEST(HfCheckpoint, MissingShardIsNamed) {
  test::ScratchDir dir;
  const HfCheckpoint checkpoint = load_hf_checkpoint(test::model_fixture("llama_mha_untied"));
  write_sharded_safetensors(
      dir.path(), named_tensors(*load_model(test::model_fixture("llama_mha_untied"), torch::kFloat32)), 300 * 1024);
  const std::string removed = shard_files(dir.path()).at(1);
  fs::remove(dir / removed);
  try {
    CheckpointTensors::open(dir.path());
    FAIL() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(removed), std::string::npos) << e.what();
  }
}

TEST(HfCheckpoint, MismatchedWeightsAreListed) {
  test::ScratchDir dir;
  fs::copy(test::model_fixture("llama_mha_untied"), dir / "ckpt");
  // Pretend the model has 3 layers: layer 2's weights are missing.
  auto config = nlohmann::json::parse(read_text_file(dir / "ckpt" / "config.json"));
  config["num_hidden_layers"] = 3;
  write_file_atomically(dir / "ckpt" / "config.json", config.dump());
  const HfCheckpoint checkpoint = load_hf_checkpoint(dir / "ckpt");
  CausalLM model(checkpoint.config);
  const std::string message = test::error_message<FormatError>([&] { load_weights(*model, checkpoint); });
  EXPECT_NE(message.find("model.layers.2."), std::string::npos) << message;
}

TEST(HfCheckpoint, ShapeMismatchNamesTheTensor) {
  test::ScratchDir dir;
  fs::copy(test::model_fixture("llama_mha_untied"), dir / "ckpt");
  auto config = nlohmann::json::parse(read_text_file(dir / "ckpt" / "config.json"));
  config["intermediate_size"] = 128;
  write_file_atomically(dir / "ckpt" / "config.json", config.dump());
  const HfCheckpoint checkpoint = load_hf_checkpoint(dir / "ckpt");
  CausalLM model(checkpoint.config);
  const std::string message = test::error_message<FormatError>([&] { load_weights(*model, checkpoint); });
  EXPECT_NE(message.find("mlp"), std::string::npos) << message;
  EXPECT_NE(message.find("shape"), std::string::npos) << message;
}

TEST(HfCheckpoint, MissingDirectoryAndFilesAreClear) {
  test::ScratchDir dir;
  EXPECT_THROW(load_hf_checkpoint(dir / "nope"), IoError);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(load_hf_checkpoint(dir / "empty"), IoError);  // no config.json
  fs::copy_file(test::model_fixture("llama_mha_untied") / "config.json", dir / "empty" / "config.json");
  const std::string message = test::error_message<IoError>([&] { load_hf_checkpoint(dir / "empty"); });
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
}

// A causal Soft MoE saved before it had a block of its own carried a zero selection bias a layer
// in svmoe_state.safetensors: it still loads (the bias changed nothing); a bias that is not zero,
// or any other buffer the model lacks, is an error naming the file.
TEST(HfCheckpoint, AnOlderSoftMoesZeroSelectionBiasStillLoads) {
  test::ScratchDir dir;
  ModelConfig config = load_hf_checkpoint(test::model_fixture("llama_mha_untied")).config;
  config.architecture = Architecture::kSoftMoe;
  config.num_local_experts = 3;
  config.num_experts_per_tok = 2;
  CausalLM model(config);
  const auto save_with_bias = [&](const fs::path& out, float value) {
    SaveOptions options;
    for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
      options.svmoe_state.push_back({"model.layers." + std::to_string(l) + ".block_sparse_moe.selection_bias",
                                     torch::full({config.num_local_experts}, value)});
    }
    save_hf_checkpoint(out, config, named_tensors(*model), options);
  };
  save_with_bias(dir / "old", 0.0f);
  EXPECT_NO_THROW(load_model(dir / "old", torch::kFloat32));
  save_with_bias(dir / "biased", 0.5f);
  const std::string message = test::error_message<FormatError>([&] { load_model(dir / "biased", torch::kFloat32); });
  EXPECT_NE(message.find("svmoe_state.safetensors' holds 'model.layers.0.block_sparse_moe.selection_bias'"),
            std::string::npos)
      << message;
}

}  // namespace svmoe
