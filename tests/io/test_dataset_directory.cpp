#include "svmoe/io/dataset_directory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/io/safetensors.h"
#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

TEST(DatasetDirectory, ManifestRoundTripsWithFormatAndVersion) {
  test::ScratchDir dir;
  write_dataset_manifest(dir.path(), {{"num_subdomains", 3}, {"vocab_size", 100}, {"seed", 7}});
  const DatasetManifest manifest = read_dataset_manifest(dir.path());
  EXPECT_EQ(manifest.num_subdomains, 3);
  EXPECT_EQ(manifest.vocab_size, 100);
  EXPECT_EQ(manifest.json["format"], kDatasetFormat);
  EXPECT_EQ(manifest.json["version"], kDatasetFormatVersion);
  EXPECT_EQ(manifest.json["seed"], 7);
}

TEST(DatasetDirectory, BadManifestsSayWhatIsWrong) {
  test::ScratchDir dir;
  std::string message = test::error_message<IoError>([&] { read_dataset_manifest(dir.path()); });
  EXPECT_NE(message.find("no manifest.json"), std::string::npos) << message;

  test::write_text(dataset_manifest_path(dir.path()), R"({"format": "svmoe-dataset", "version": 99})");
  message = test::error_message<FormatError>([&] { read_dataset_manifest(dir.path()); });
  EXPECT_NE(message.find("version 99"), std::string::npos) << message;

  test::write_text(dataset_manifest_path(dir.path()), R"({"format": "something else"})");
  message = test::error_message<FormatError>([&] { read_dataset_manifest(dir.path()); });
  EXPECT_NE(message.find("not an svmoe dataset manifest"), std::string::npos) << message;

  test::write_text(dataset_manifest_path(dir.path()), R"({"format": "svmoe-dataset", "version": 1})");
  message = test::error_message<FormatError>([&] { read_dataset_manifest(dir.path()); });
  EXPECT_NE(message.find("num_subdomains"), std::string::npos) << message;
}

TEST(DatasetDirectory, ShardsOfChosenSubdomainsAndAnOutOfRangeOne) {
  test::ScratchDir dir;
  write_dataset_manifest(dir.path(), {{"num_subdomains", 3}, {"vocab_size", 100}});
  const DatasetShards all = dataset_shards(dir.path(), {});
  ASSERT_EQ(all.train.size(), 3u);
  EXPECT_EQ(all.valid[2], shard_prefix(dir.path(), 2, "valid"));
  EXPECT_EQ(all.train[0], dir.path() / "subdomain_0" / "train");
  EXPECT_EQ(all.tokenizer, dir.path());  // no tokenizer/ folder
  EXPECT_EQ(dataset_shards(dir.path(), {1}).train.size(), 1u);
  const std::string message = test::error_message<ConfigError>([&] { dataset_shards(dir.path(), {3}); });
  EXPECT_NE(message.find("subdomain 3 does not exist"), std::string::npos) << message;
}

TEST(DatasetDirectory, TfidfTargetsArePaddedForALargerEmbedding) {
  test::ScratchDir dir;
  const auto targets = torch::tensor({{0.25f, 0.75f}, {1.0f, 0.0f}, {0.5f, 0.5f}});
  const auto has_target = torch::tensor({true, false, true});
  const auto subdomain_tfidf = torch::rand({2, 3});
  write_tfidf_file(dir.path(), {targets, has_target}, subdomain_tfidf, torch::zeros({3, 2, 3}, torch::kInt64));
  const TfidfTargetTensors read = load_tfidf_targets(dir.path(), 5);
  ASSERT_EQ(read.targets.sizes(), (std::vector<std::int64_t>{5, 2}));
  EXPECT_TRUE(torch::equal(read.targets.narrow(0, 0, 3), targets));
  EXPECT_FALSE(read.has_target[3].item<bool>());
  EXPECT_FALSE(read.has_target[4].item<bool>());
  EXPECT_TRUE(torch::equal(load_subdomain_tfidf(dir.path()), subdomain_tfidf));
  test::ScratchDir empty;
  const std::string message = test::error_message<IoError>([&] { load_tfidf_targets(empty.path()); });
  EXPECT_NE(message.find("no tfidf.safetensors"), std::string::npos) << message;
}

// A dataset prepared before token_counts existed serves its stored teacher; a variant is a clear
// error that says to prepare it again.
TEST(DatasetDirectory, ATeacherVariantOfAnOlderDatasetSaysToPrepareItAgain) {
  test::ScratchDir dir;
  const auto targets = torch::tensor({{0.25f, 0.75f}, {1.0f, 0.0f}});
  write_safetensors(dataset_tfidf_path(dir.path()),
                    {{"tfidf_target", targets},
                     {"has_target", torch::tensor({true, true})},
                     {"subdomain_tfidf", torch::rand({2, 2})}},
                    {});
  EXPECT_TRUE(torch::equal(load_tfidf_targets(dir.path()).targets, targets));
  const std::string message = test::error_message<FormatError>(
      [&] { load_tfidf_targets(dir.path(), 0, {TeacherSplit::kAll, TermFrequency::kRaw}); });
  EXPECT_NE(message.find("has no token_counts"), std::string::npos) << message;
  EXPECT_NE(message.find("teacher_split"), std::string::npos) << message;
}

}  // namespace svmoe
