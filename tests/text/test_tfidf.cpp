#include "svmoe/text/tfidf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "svmoe/text/corpus.h"
#include "svmoe/text/tokenizer.h"
#include "test_support.h"

namespace svmoe {

TEST(Tfidf, SmoothIdfAndL2Rows) {
  // Two documents over 3 tokens: token 0 in both, token 1 twice in doc 0, token 2 once in doc 1.
  const TokenCounts counts = {{1, 2, 0}, {1, 0, 1}};
  const auto rows = tfidf_rows(counts);
  const double idf_common = std::log(3.0 / 3.0) + 1.0;
  const double idf_rare = std::log(3.0 / 2.0) + 1.0;
  const double norm0 = std::sqrt(idf_common * idf_common + 4 * idf_rare * idf_rare);
  ASSERT_EQ(rows[0].ids, (std::vector<std::int32_t>{0, 1}));
  EXPECT_NEAR(rows[0].values[0], idf_common / norm0, 1e-12);
  EXPECT_NEAR(rows[0].values[1], 2 * idf_rare / norm0, 1e-12);
}

TEST(Tfidf, TargetsSumToOnePerTokenAndMaskUnseen) {
  const TokenCounts counts = {{3, 1, 0, 0}, {1, 0, 2, 0}, {1, 0, 0, 0}};
  const auto targets = normalise_token_columns(tfidf_rows(counts), 4);
  for (int t = 0; t < 3; ++t) {
    double sum = 0;
    for (int n = 0; n < 3; ++n) sum += targets.targets[t * 3 + n];
    EXPECT_NEAR(sum, 1.0, 1e-6) << t;
    EXPECT_TRUE(targets.has_target[t]);
  }
  EXPECT_FALSE(targets.has_target[3]);
  EXPECT_EQ(targets.targets[1 * 3 + 1], 0.0f);  // token 1 only in subdomain 0
  EXPECT_NEAR(targets.targets[1 * 3 + 0], 1.0f, 1e-6);
}

TEST(Tfidf, CosineDistances) {
  const auto rows = tfidf_rows({{1, 0}, {2, 0}, {0, 1}});
  const auto d = cosine_distances(rows);
  EXPECT_NEAR(d[0 * 3 + 1], 0.0, 1e-12);
  EXPECT_NEAR(d[0 * 3 + 2], 1.0, 1e-12);
  EXPECT_EQ(d[1 * 3 + 1], 0.0);
}

// The category TF-IDF of the real example corpus (the CI slice of the Linux documentation,
// tokenised with the fixture tokenizer) equals scikit-learn's TfidfVectorizer to 1e-6.
// Pinned categories count in the idf (SPEC.md §2.1: all M categories are documents). Tokens:
// 0 in categories 0 (pinned) and 1, 1 in category 2, 2 in categories 1 and 2.
TEST(Tfidf, DistancesAmongUnpinnedCategoriesUseTheIdfOfAll) {
  const TokenCounts counts = {{3, 0, 0}, {1, 0, 1}, {0, 1, 1}};
  const auto distances = cosine_distances_among(counts, {1, 2});
  ASSERT_EQ(distances.size(), 4u);
  const double idf0 = std::log(4.0 / 3.0) + 1, idf1 = std::log(4.0 / 2.0) + 1, idf2 = std::log(4.0 / 3.0) + 1;
  const double cosine = idf2 * idf2 / (std::hypot(idf0, idf2) * std::hypot(idf1, idf2));
  EXPECT_NEAR(distances[1], 1 - cosine, 1e-12);
  EXPECT_NEAR(distances[2], 1 - cosine, 1e-12);
  // Over the unpinned two alone the idf differs (ln(3/2) + 1, ln(3/2) + 1, 1): not what is asked.
  const double alone = 1 - 1.0 / (1 + std::pow(std::log(1.5) + 1, 2));
  EXPECT_GT(std::abs(distances[1] - alone), 0.05);
}

TEST(TfidfReference, CategoryTfidfMatchesScikitLearnOnTheExampleCorpus) {
  const auto tokenizer = load_tokenizer(test::data_dir() / "tokenizers" / "unigram");
  CorpusReader reader({{test::example_ci_corpus()}, "text", "category", false});
  std::map<std::string, std::vector<std::int32_t>> by_category;
  Document document;
  while (reader.next(document)) {
    const auto ids = tokenizer->encode(document.text, false);
    auto& all = by_category[document.category];
    all.insert(all.end(), ids.begin(), ids.end());
  }
  ASSERT_GE(by_category.size(), 10u);
  TokenCounts counts;
  nlohmann::json documents = nlohmann::json::array();
  for (const auto& [category, ids] : by_category) {
    counts.emplace_back(static_cast<std::size_t>(tokenizer->vocab_size()), 0);
    for (const auto id : ids) ++counts.back()[static_cast<std::size_t>(id)];
    documents.push_back(ids);
  }
  // tf as the raw count (sklearn's default) and sublinear (1 + ln count; train_router.teacher_tf).
  for (const TermFrequency tf : enum_values<TermFrequency>()) {
    const auto rows = tfidf_rows(counts, tf);
    const bool sublinear = tf == TermFrequency::kSublinear;
    const auto answer = test::sklearn_reference("tfidf", {{"documents", documents}, {"sublinear_tf", sublinear}});
    ASSERT_EQ(answer["rows"].size(), rows.size());
    double worst = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const auto& expected = answer["rows"][r];
      ASSERT_EQ(expected.size(), rows[r].ids.size()) << r;
      for (std::size_t k = 0; k < rows[r].ids.size(); ++k) {
        worst =
            std::max(worst, std::abs(expected.at(std::to_string(rows[r].ids[k])).get<double>() - rows[r].values[k]));
      }
    }
    EXPECT_LT(worst, 1e-6) << enum_name(tf);
  }
}

}  // namespace svmoe
