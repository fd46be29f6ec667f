#include "svmoe/stages/prepare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/io/token_shards.h"
#include "svmoe/text/tfidf.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/sha256.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// A corpus of six categories in three topics, written as JSONL: the two categories of a topic
// write sentences from the same pool of topical words, so their TF-IDF rows are close.
fs::path write_topic_corpus(const fs::path& dir) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> topics = {
      {{"cooking", "baking"},
       {"butter", "flour", "dough", "oven", "sugar", "bread", "knead", "garlic", "onion", "simmer", "crust", "yeast"}},
      {{"sailing", "rowing"},
       {"boat", "river", "oars", "crew", "stroke", "mainsail", "wind", "harbour", "tide", "keel", "rudder", "current"}},
      {{"chess", "go"},
       {"knight", "stone", "board", "opening", "endgame", "bishop", "territory", "capture", "rook", "corner", "pawn",
        "ko"}},
  };
  std::string lines;
  for (int sentence = 0; sentence < 20; ++sentence) {
    for (const auto& [categories, words] : topics) {
      for (std::size_t c = 0; c < categories.size(); ++c) {
        std::string text = "The";
        for (std::size_t w = 0; w < 8; ++w) text += " " + words[(sentence * 5 + c * 7 + w * 3) % words.size()];
        lines += nlohmann::json({{"text", text + "."}, {"category", categories[c]}}).dump() + "\n";
      }
    }
  }
  test::write_text(dir / "corpus.jsonl", lines);
  return dir / "corpus.jsonl";
}

PrepareSettings topic_settings(const fs::path& dir) {
  PrepareSettings s;
  s.corpus = {write_topic_corpus(dir)};
  s.output = dir / "dataset";
  s.tokenizer = test::data_dir() / "tokenizers" / "bpe";
  s.num_subdomains = 3;
  s.threads = 2;
  return s;
}

std::map<std::string, std::string> file_hashes(const fs::path& dir) {
  std::map<std::string, std::string> hashes;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) hashes[fs::relative(entry.path(), dir).string()] = sha256_file_hex(entry.path());
  }
  return hashes;
}

}  // namespace

TEST(Prepare, ClustersTopicsIntoEqualSubdomainsAndWritesTheDataset) {
  test::ScratchDir dir;
  const PrepareSettings s = topic_settings(dir.path());
  const PrepareResult result = run_prepare(s, RuntimeSettings{}, Json::object());
  ASSERT_EQ(result.subdomains.size(), 3u);
  std::map<std::string, int> subdomain;
  for (const auto& c : result.categories) subdomain[c.name] = c.subdomain;
  EXPECT_EQ(subdomain["cooking"], subdomain["baking"]);
  EXPECT_EQ(subdomain["sailing"], subdomain["rowing"]);
  EXPECT_EQ(subdomain["chess"], subdomain["go"]);
  for (const auto& d : result.subdomains) EXPECT_EQ(d.categories.size(), 2u);

  // Every document lands in exactly one split: 2 categories x 20 documents per subdomain, 8:1:1.
  for (int d = 0; d < 3; ++d) {
    const auto train = TokenShard::open(shard_prefix(s.output, d, "train"));
    const auto valid = TokenShard::open(shard_prefix(s.output, d, "valid"));
    const auto test = TokenShard::open(shard_prefix(s.output, d, "test"));
    EXPECT_EQ(train.documents(), 32u);
    EXPECT_EQ(valid.documents(), 4u);
    EXPECT_EQ(test.documents(), 4u);
    EXPECT_EQ(train.document(0).back(), 2);  // EOS ends each document
  }
  const SafetensorsFile tfidf = SafetensorsFile::open(s.output / "tfidf.safetensors");
  const auto targets = tfidf.tensor("tfidf_target");
  const auto has_target = tfidf.tensor("has_target");
  EXPECT_EQ(targets.sizes(), (std::vector<std::int64_t>{3000, 3}));
  const auto sums = targets.sum(1);
  EXPECT_TRUE(torch::allclose(sums.masked_select(has_target), torch::ones({has_target.sum().item<std::int64_t>()}),
                              1e-5, 1e-5));
  EXPECT_EQ(sums.masked_select(has_target.logical_not()).abs().sum().item<float>(), 0.0f);
  const auto manifest = nlohmann::json::parse(read_text_file(s.output / "manifest.json"));
  EXPECT_EQ(manifest["version"], kDatasetFormatVersion);
  EXPECT_EQ(manifest["tokenizer"]["sha256"], sha256_file_hex(s.tokenizer / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(s.output / "tokenizer" / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(s.output / "tmp"));
}

TEST(Prepare, RerunGivesIdenticalBytes) {
  test::ScratchDir dir;
  const PrepareSettings s = topic_settings(dir.path());
  run_prepare(s, RuntimeSettings{}, Json::object());
  const auto first = file_hashes(s.output);
  run_prepare(s, RuntimeSettings{}, Json::object());
  EXPECT_EQ(file_hashes(s.output), first);
  EXPECT_FALSE(fs::exists(dir / "dataset.partial"));
}

TEST(Prepare, PinnedCategoriesAreSubdomainsOfTheirOwn) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.num_subdomains = 4;
  s.pinned_categories = {"go", "sailing"};
  const PrepareResult result = run_prepare(s, RuntimeSettings{}, Json::object());
  EXPECT_EQ(result.subdomains[0].categories, (std::vector<std::string>{"go"}));
  EXPECT_EQ(result.subdomains[1].categories, (std::vector<std::string>{"sailing"}));
  EXPECT_EQ(result.subdomains[2].categories.size() + result.subdomains[3].categories.size(), 4u);
  // The paper numbers clustered subdomains first and pinned ones last, from 1 (Table 4).
  EXPECT_NE(result.table4_markdown.find("| 0 | go | 3 |"), std::string::npos) << result.table4_markdown;
  EXPECT_NE(result.table4_markdown.find("| 1 | sailing | 4 |"), std::string::npos) << result.table4_markdown;
  EXPECT_NE(result.table4_markdown.find("| 2 | "), std::string::npos);
  // A clustered subdomain has no paper ID: the clustering numbers its clusters arbitrarily.
  EXPECT_NE(result.table1_markdown.find(" | - |\n| 3 | "), std::string::npos) << result.table1_markdown;
  EXPECT_NE(result.table4_markdown.find("no paper ID"), std::string::npos) << result.table4_markdown;
}

// prepare.subdomain_of imposes the subdomains (the paper's Table 4): here against the topics,
// which clustering would keep together; IDs count from 1, as Table 4 does.
TEST(Prepare, GivenSubdomainsReplaceTheClustering) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.subdomain_of = {{"cooking", 1}, {"sailing", 1}, {"baking", 2}, {"chess", 2}, {"rowing", 3}, {"go", 3}};
  const PrepareResult result = run_prepare(s, RuntimeSettings{}, Json::object());
  EXPECT_EQ(result.subdomains[0].categories, (std::vector<std::string>{"cooking", "sailing"}));
  EXPECT_EQ(result.subdomains[1].categories, (std::vector<std::string>{"baking", "chess"}));
  EXPECT_EQ(result.subdomains[2].categories, (std::vector<std::string>{"go", "rowing"}));
  EXPECT_NE(result.table4_markdown.find("| 0 | cooking, sailing | 1 |"), std::string::npos) << result.table4_markdown;
  EXPECT_NE(result.table4_markdown.find("| 2 | go, rowing | 3 |"), std::string::npos) << result.table4_markdown;
  const auto manifest = nlohmann::json::parse(read_text_file(s.output / "manifest.json"));
  EXPECT_EQ(manifest["categories"][0]["name"], "baking");
  EXPECT_EQ(manifest["categories"][0]["subdomain"], 1);
}

TEST(Prepare, ABadSubdomainMapNamesTheCategory) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.subdomain_of = {{"cooking", 1}, {"sailing", 1}, {"baking", 2}, {"chess", 2}, {"rowing", 3}};
  std::string message = test::error_message<ConfigError>([&] { run_prepare(s, RuntimeSettings{}, Json::object()); });
  EXPECT_NE(message.find("no subdomain to 1 categories of the corpus: go"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(s.output));

  s.subdomain_of["goo"] = 3;
  try {
    run_prepare(s, RuntimeSettings{}, Json::object());
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'goo' (did you mean 'go'?)"), std::string::npos) << e.what();
  }

  s.subdomain_of.erase("goo");
  s.subdomain_of["go"] = 2;
  s.subdomain_of["rowing"] = 2;
  message = test::error_message<ConfigError>([&] { run_prepare(s, RuntimeSettings{}, Json::object()); });
  EXPECT_NE(message.find("no category to subdomain 3 of 3"), std::string::npos) << message;
}

// The teacher's variants (train_router.teacher_*) come from the stored token counts: the
// default computed from them equals the stored teacher, and `all` equals the teacher of every
// split's tokens counted again from the shards.
TEST(Prepare, TeacherVariantsComeFromTheStoredTokenCounts) {
  test::ScratchDir dir;
  const PrepareSettings s = topic_settings(dir.path());
  run_prepare(s, RuntimeSettings{}, Json::object());
  const auto stored = load_tfidf_targets(s.output);
  const auto file = SafetensorsFile::open(s.output / "tfidf.safetensors");
  const auto counts = file.tensor("token_counts");
  ASSERT_EQ(counts.sizes(), torch::IntArrayRef({3, 3, stored.targets.size(0)}));

  // The default, recomputed from counts (as a variant would be), is the stored teacher.
  TokenCounts train(3), all(3);
  const auto vocab = static_cast<std::size_t>(stored.targets.size(0));
  for (int d = 0; d < 3; ++d) {
    train[d].assign(vocab, 0);
    all[d].assign(vocab, 0);
    for (std::size_t t = 0; t < vocab; ++t) train[d][t] = counts[0][d][static_cast<std::int64_t>(t)].item<std::int64_t>();
    for (const char* split : {"train", "valid", "test"}) {
      const auto shard = TokenShard::open(shard_prefix(s.output, d, split));
      for (std::uint64_t k = 0; k < shard.documents(); ++k) {
        for (const auto id : shard.document(k)) {
          if (id != 2) ++all[d][static_cast<std::size_t>(id)];  // EOS (id 2) is not text
        }
      }
    }
  }
  const auto recomputed = teacher_tensors(router_teacher(train), 3);
  EXPECT_TRUE(torch::equal(recomputed.targets, stored.targets));
  EXPECT_TRUE(torch::equal(recomputed.has_target, stored.has_target));

  const auto whole = load_tfidf_targets(s.output, 0, {TeacherSplit::kAll, TermFrequency::kRaw});
  const auto expected = teacher_tensors(router_teacher(all), 3);
  EXPECT_TRUE(torch::equal(whole.targets, expected.targets));
  EXPECT_FALSE(torch::equal(whole.targets, stored.targets));  // the valid and test tokens count
  const auto sublinear = load_tfidf_targets(s.output, 0, {TeacherSplit::kTrain, TermFrequency::kSublinear});
  EXPECT_TRUE(torch::equal(sublinear.targets, teacher_tensors(router_teacher(train, TermFrequency::kSublinear), 3).targets));
  EXPECT_FALSE(torch::equal(sublinear.targets, stored.targets));
}

// The cited clustering's balancing (prepare.cluster_sizes: equity) on the three topics: the
// pairs stay together, as every size (2) is within [2 x equity, 2 x (2 - equity)].
TEST(Prepare, EquityClusterSizesKeepNaturalClusters) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.cluster_sizes = ClusterSizes::kEquity;
  s.equity_fraction = 0.3;
  const PrepareResult result = run_prepare(s, RuntimeSettings{}, Json::object());
  std::map<std::string, int> subdomain;
  for (const auto& c : result.categories) subdomain[c.name] = c.subdomain;
  EXPECT_EQ(subdomain["cooking"], subdomain["baking"]);
  EXPECT_EQ(subdomain["sailing"], subdomain["rowing"]);
  EXPECT_EQ(subdomain["chess"], subdomain["go"]);
}

TEST(Prepare, BadRequestsAreClearAndLeaveNothingBehind) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.num_subdomains = 7;
  std::string message = test::error_message<ConfigError>([&] { run_prepare(s, RuntimeSettings{}, Json::object()); });
  EXPECT_NE(message.find("only 6 categories"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(s.output));
  EXPECT_FALSE(fs::exists(dir / "dataset.partial"));

  s.num_subdomains = 3;
  s.pinned_categories = {"sailng"};
  try {
    run_prepare(s, RuntimeSettings{}, Json::object());
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'sailng'"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("did you mean 'sailing'"), std::string::npos) << e.hint();
  }

  s.pinned_categories = {};
  test::write_text(dir / "empty.jsonl", "");
  s.corpus = {dir / "empty.jsonl"};
  message = test::error_message<FormatError>([&] { run_prepare(s, RuntimeSettings{}, Json::object()); });
  EXPECT_NE(message.find("no documents"), std::string::npos) << message;
}

TEST(Prepare, CategoryListSkipsAndCountsTheOthers) {
  test::ScratchDir dir;
  PrepareSettings s = topic_settings(dir.path());
  s.num_subdomains = 2;
  s.categories = {"chess", "go", "sailing", "rowing"};
  const PrepareResult result = run_prepare(s, RuntimeSettings{}, Json::object());
  EXPECT_EQ(result.categories.size(), 4u);
  const auto manifest = nlohmann::json::parse(read_text_file(s.output / "manifest.json"));
  EXPECT_EQ(manifest["corpus"]["unknown_category_documents_skipped"]["cooking"], 20);
  EXPECT_EQ(manifest["corpus"]["unknown_category_documents_skipped"]["baking"], 20);
  s.categories.push_back("fencing");
  const std::string message =
      test::error_message<ConfigError>([&] { run_prepare(s, RuntimeSettings{}, Json::object()); });
  EXPECT_NE(message.find("'fencing'"), std::string::npos) << message;
}

// The subdomain TF-IDF written for the router equals scikit-learn's on the training splits of
// the real example corpus.
TEST(PrepareReference, SubdomainTfidfMatchesScikitLearn) {
  test::ScratchDir dir;
  PrepareSettings s;
  s.corpus = {test::example_ci_corpus()};
  s.output = dir / "dataset";
  s.tokenizer = test::data_dir() / "tokenizers" / "unigram";
  s.num_subdomains = 4;
  run_prepare(s, RuntimeSettings{}, Json::object());
  nlohmann::json documents = nlohmann::json::array();
  for (int d = 0; d < 4; ++d) {
    const auto shard = TokenShard::open(shard_prefix(s.output, d, "train"));
    std::vector<std::int32_t> ids;
    for (std::uint64_t k = 0; k < shard.documents(); ++k) {
      for (const auto id : shard.document(k)) {
        if (id != 2) ids.push_back(id);  // EOS separates documents; it is not part of the text
      }
    }
    documents.push_back(ids);
  }
  const auto answer = test::sklearn_reference("tfidf", {{"documents", documents}});
  const auto tfidf = SafetensorsFile::open(s.output / "tfidf.safetensors").tensor("subdomain_tfidf");
  double worst = 0;
  std::int64_t nonzero = 0;
  for (int d = 0; d < 4; ++d) {
    const auto& expected = answer["rows"][d];
    for (std::int64_t t = 0; t < tfidf.size(1); ++t) {
      const float value = tfidf[d][t].item<float>();
      const auto key = std::to_string(t);
      const double reference = expected.contains(key) ? expected[key].get<double>() : 0.0;
      worst = std::max(worst, std::abs(reference - value));
      nonzero += value != 0 ? 1 : 0;
    }
  }
  EXPECT_GT(nonzero, 1000);
  EXPECT_LT(worst, 1e-6);
}

}  // namespace svmoe
