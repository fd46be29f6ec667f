#include "svmoe/text/corpus.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
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

// Corpora as clusters hold them (tests/data/corpus/make-fixtures.sh: compressed by Debian's zstd
// tool): one frame with the fields nested, read through JSON pointers; two frames concatenated.
TEST(Corpus, ReadsZstandardFramesMadeByTheZstdTool) {
  const fs::path corpus = test::data_dir() / "corpus";
  const auto nested = read_all({{corpus / "nested.jsonl.zst"}, "/body/text", "/meta/category", false});
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[1].text, "Speicher wird in Seiten verwaltet. 日本語");
  EXPECT_EQ(nested[2].category, "irq");
  // "~1" is a '/' inside a key (RFC 6901).
  EXPECT_EQ(read_all({{corpus / "nested.jsonl.zst"}, "/body/text", "/meta/a~1b", false})[0].category, "slash");
  const auto frames = read_all({{corpus / "two_frames.jsonl.zst"}, "text", "category", false});
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].text, "frame one");
  EXPECT_EQ(frames[2].text, "no newline");
  // A directory's .jsonl.zst files are part of the corpus.
  EXPECT_EQ(list_corpus_files({corpus}).size(), 2u);
}

TEST(Corpus, JsonPointerFieldsAreCheckedAndNamedInErrors) {
  const fs::path nested = test::data_dir() / "corpus" / "nested.jsonl.zst";
  const std::string missing = test::error_message<FormatError>([&] {
    read_all({{nested}, "/body/text", "/meta/topic", false});
  });
  EXPECT_NE(missing.find("nested.jsonl.zst' line 1 has no string field at /meta/topic"), std::string::npos) << missing;
  // A pointer through a string, or to an object, is no string field either.
  EXPECT_THROW(read_all({{nested}, "/body/text/x", "/meta/category", false}), FormatError);
  EXPECT_THROW(read_all({{nested}, "/body", "/meta/category", false}), FormatError);
  const std::string malformed = test::error_message<ConfigError>([&] {
    read_all({{nested}, "/body/text", "/meta/a~2b", false});
  });
  EXPECT_NE(malformed.find("prepare.category_field is '/meta/a~2b', not a valid JSON pointer"), std::string::npos)
      << malformed;
  EXPECT_THROW(read_all({{nested}, "", "category", false}), ConfigError);
  // A key without a leading '/' is a top-level key, even with a '/' in it.
  test::ScratchDir dir;
  test::write_text(dir / "c.jsonl", "{\"a/b\": \"t\", \"category\": \"x\"}\n");
  EXPECT_EQ(read_all({{dir / "c.jsonl"}, "a/b", "category", false})[0].text, "t");
}

namespace {

// `zstd` (Debian's tool) compresses `plain` into `compressed`.
void zstd_tool(const fs::path& plain, const fs::path& compressed) {
  const std::string command = "zstd -q -f '" + plain.string() + "' -o '" + compressed.string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command << " (install the zstd package: scripts/install-deps.sh)";
}

}  // namespace

// Many chunks and lines longer than the reader's buffer come back as written; a file cut inside
// a frame, or with a damaged byte, is a FormatError naming it and the last good line.
TEST(Corpus, LongZstandardCorporaStreamAndDamageIsNamed) {
  test::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) {
    text += "{\"text\": \"document " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 97), 'x') +
            "\", \"category\": \"c" + std::to_string(i % 7) + "\"}\n";
  }
  text += "{\"text\": \"" + std::string(300000, 'y') + "\", \"category\": \"long\"}\n";
  test::write_text(dir / "big.jsonl", text);
  zstd_tool(dir / "big.jsonl", dir / "big.jsonl.zst");
  const auto documents = read_all({{dir / "big.jsonl.zst"}, "text", "category", false});
  ASSERT_EQ(documents.size(), 20001u);
  EXPECT_EQ(documents[12345].text, "document 12345 " + std::string(12345 % 97, 'x'));
  EXPECT_EQ(documents.back().text.size(), 300000u);

  const std::string bytes = read_text_file(dir / "big.jsonl.zst");
  std::ofstream(dir / "cut.jsonl.zst", std::ios::binary) << bytes.substr(0, bytes.size() * 2 / 3);
  const std::string cut = test::error_message<FormatError>([&] {
    read_all({{dir / "cut.jsonl.zst"}, "text", "category", false});
  });
  EXPECT_NE(cut.find("cut.jsonl.zst' cannot be read past line"), std::string::npos) << cut;
  EXPECT_NE(cut.find("truncated"), std::string::npos) << cut;
  std::string damaged = bytes;
  damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 0x5A);
  std::ofstream(dir / "damaged.jsonl.zst", std::ios::binary) << damaged;
  const std::string message = test::error_message<FormatError>([&] {
    read_all({{dir / "damaged.jsonl.zst"}, "text", "category", false});
  });
  // The decoder's check (a corrupt block, or the frame's checksum) names the file and the line.
  EXPECT_NE(message.find("damaged.jsonl.zst' cannot be read past line"), std::string::npos) << message;
}

}  // namespace svmoe
