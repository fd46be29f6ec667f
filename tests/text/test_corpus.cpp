#include "svmoe/text/corpus.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {
std::vector<Document> read_all(CorpusOptions options, CorpusStats* stats = nullptr) {
  CorpusReader reader(std::move(options));
  std::vector<Document> documents;
  Document d;
  while (reader.next(d)) documents.push_back(d);
  if (stats) *stats = reader.stats();
  return documents;
}
}  // namespace

TEST(Corpus, ReadsJsonlAndGzipInOrder) {
  test::ScratchDir dir;
  fs::create_directories(dir / "corpus");
  test::write_text(dir / "corpus" / "a.jsonl",
                   "{\"text\": \"one\", \"category\": \"x\"}\n\n{\"text\": \"two\", \"category\": \"y\"}\n");
  gzFile gz = gzopen((dir / "corpus" / "b.jsonl.gz").c_str(), "wb");
  const std::string line = "{\"text\": \"three 日本\", \"category\": \"x\"}\n{\"text\": \"\", \"category\": \"x\"}";
  gzwrite(gz, line.data(), static_cast<unsigned>(line.size()));
  gzclose(gz);
  test::write_text(dir / "corpus" / "ignored.txt", "not part of the corpus");
  CorpusStats stats;
  const auto documents = read_all({{dir / "corpus"}, "text", "category", false}, &stats);
  ASSERT_EQ(documents.size(), 3u);
  EXPECT_EQ(documents[0].text, "one");
  EXPECT_EQ(documents[1].category, "y");
  EXPECT_EQ(documents[2].text, "three 日本");
  EXPECT_EQ(stats.empty_documents, 1u);
  EXPECT_EQ(stats.documents, 3u);
}

TEST(Corpus, BadLineNamesFileAndLine) {
  test::ScratchDir dir;
  test::write_text(dir / "c.jsonl", "{\"text\": \"ok\", \"category\": \"x\"}\n{\"text\": \"broken\"\n");
  try {
    read_all({{dir / "c.jsonl"}, "text", "category", false});
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("c.jsonl' line 2"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("skip_bad_lines"), std::string::npos);
  }
}

TEST(Corpus, MissingFieldIsABadLineThatCanBeSkipped) {
  test::ScratchDir dir;
  test::write_text(dir / "c.jsonl",
                   "{\"body\": \"ok\", \"category\": \"x\"}\n[1]\n{\"body\": \"b\", \"category\": \"y\"}\n");
  const std::string message = test::error_message<FormatError>([&] {
    read_all({{dir / "c.jsonl"}, "text", "category", false});
  });
  EXPECT_NE(message.find("no string field \"text\""), std::string::npos) << message;
  CorpusStats stats;
  const auto documents = read_all({{dir / "c.jsonl"}, "body", "category", true}, &stats);
  EXPECT_EQ(documents.size(), 2u);
  EXPECT_EQ(stats.bad_lines, 1u);
}

TEST(Corpus, MissingInputsAreClear) {
  test::ScratchDir dir;
  EXPECT_THROW(list_corpus_files({dir / "nope.jsonl"}), IoError);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(list_corpus_files({dir / "empty"}), IoError);
  EXPECT_THROW(list_corpus_files({}), ConfigError);
}

}  // namespace svmoe
