#include "svmoe/stages/prepare.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "svmoe/io/dataset_directory.h"
#include "svmoe/io/safetensors.h"
#include "svmoe/io/token_shards.h"
#include "svmoe/text/clustering.h"
#include "svmoe/text/corpus.h"
#include "svmoe/text/tfidf.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/cpus.h"
#include "svmoe/util/directory_lock.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/sha256.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

unsigned thread_count(int configured) { return configured > 0 ? static_cast<unsigned>(configured) : available_cpus(); }

// Step 0 (optional): a SentencePiece tokenizer trained on the corpus, written to DATASET/tokenizer.model.
fs::path train_tokenizer(const PrepareSettings& s, const RuntimeSettings& runtime, const fs::path& partial) {
  const fs::path sentences = partial / "tmp" / "tokenizer_training.txt";
  {
    CorpusReader reader({s.corpus, s.text_field, s.category_field, s.skip_bad_lines});
    std::ofstream out(sentences, std::ios::binary);
    Document document;
    while (reader.next(document)) out << document.text << '\n';
    if (!out) throw IoError("cannot write '" + sentences.string() + "'", "check free disk space");
  }
  spdlog::info("prepare: training a {} tokenizer of {} pieces", enum_name(s.tokenizer_train.model_type),
               s.tokenizer_train.vocab_size);
  SentencePieceTrainOptions options;
  options.input = sentences;
  options.model_prefix = partial / "tokenizer";
  options.vocab_size = s.tokenizer_train.vocab_size;
  options.model_type = enum_name(s.tokenizer_train.model_type);
  options.character_coverage = s.tokenizer_train.character_coverage;
  options.input_sentence_size = s.tokenizer_train.input_sentence_size;
  options.threads = thread_count(s.threads);
  options.seed = runtime.seed;
  train_sentencepiece(options);
  fs::remove(partial / "tokenizer.vocab");
  fs::remove(sentences);
  return partial / kSentencePieceFile;
}

// The tokenizer files copied into the dataset, so that it names exactly what tokenised it.
fs::path copy_tokenizer(const fs::path& tokenizer, const fs::path& partial) {
  const fs::path target = partial / "tokenizer";
  fs::create_directories(target);
  if (fs::is_directory(tokenizer)) {
    for (const auto& name : tokenizer_file_names()) {
      if (fs::exists(tokenizer / name)) fs::copy_file(tokenizer / name, target / name);
    }
  } else {
    fs::copy_file(tokenizer, target / tokenizer.filename());
    if (fs::exists(tokenizer.parent_path() / kTokenizerConfigFile)) {
      fs::copy_file(tokenizer.parent_path() / kTokenizerConfigFile, target / kTokenizerConfigFile);
    }
  }
  return fs::is_directory(tokenizer) ? target : target / tokenizer.filename();
}

struct TokenisedCorpus {
  std::vector<std::string> category_names;         // in order of first appearance
  std::vector<std::vector<std::uint64_t>> counts;  // [category][token]
  std::vector<std::uint64_t> documents;            // per category
  std::map<std::string, std::uint64_t> unknown;    // documents skipped: category not in prepare.categories
  CorpusStats stats;
  std::size_t files = 0;
};

// Step 1: tokenise every document (in batches of at most buffer_mb, on all threads) into a
// temporary shard per category, counting each category's tokens.
TokenisedCorpus tokenise_corpus(const PrepareSettings& s, const Tokenizer& tokenizer, const fs::path& temporary) {
  TokenisedCorpus result;
  std::map<std::string, std::size_t> category_index;
  std::vector<std::unique_ptr<TokenShardWriter>> writers;
  const auto vocab = static_cast<std::size_t>(tokenizer.vocab_size());
  const auto bos = tokenizer.bos_id();
  const auto eos = tokenizer.eos_id();
  if (s.add_bos && !bos) throw ConfigError("prepare.add_bos is true but the tokenizer has no BOS token");
  if (s.add_eos && !eos) throw ConfigError("prepare.add_eos is true but the tokenizer has no EOS token");

  CorpusReader reader({s.corpus, s.text_field, s.category_field, s.skip_bad_lines});
  const std::uint64_t buffer_bytes = static_cast<std::uint64_t>(s.buffer_mb) << 20;
  std::vector<std::string> texts;
  std::vector<std::string> categories;
  Document document;
  bool more = true;
  while (more) {
    texts.clear();
    categories.clear();
    std::uint64_t bytes = 0;
    while (bytes < buffer_bytes && (more = reader.next(document))) {
      if (!s.categories.empty() &&
          std::find(s.categories.begin(), s.categories.end(), document.category) == s.categories.end()) {
        ++result.unknown[document.category];
        continue;
      }
      bytes += document.text.size();
      texts.push_back(std::move(document.text));
      categories.push_back(std::move(document.category));
    }
    const auto encoded = encode_batch(tokenizer, texts, /*add_special_tokens=*/false, thread_count(s.threads));
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      auto [it, added] = category_index.emplace(categories[i], result.category_names.size());
      if (added) {
        result.category_names.push_back(categories[i]);
        result.counts.emplace_back(vocab, 0);
        result.documents.push_back(0);
        writers.push_back(std::make_unique<TokenShardWriter>(temporary / ("category_" + std::to_string(it->second))));
      }
      const std::size_t c = it->second;
      std::vector<std::int32_t> ids;
      if (s.add_bos) ids.push_back(*bos);
      for (const auto id : encoded[i]) {
        if (id < 0 || static_cast<std::size_t>(id) >= vocab) {
          throw FormatError("the tokenizer produced id " + std::to_string(id) + " outside its vocabulary of " +
                            std::to_string(vocab));
        }
        ++result.counts[c][static_cast<std::size_t>(id)];  // the document's own tokens, without BOS/EOS
        ids.push_back(id);
      }
      if (s.add_eos) ids.push_back(*eos);
      writers[c]->add_document(ids);
      ++result.documents[c];
    }
    if (!texts.empty()) {
      spdlog::info("prepare: {} documents, {} tokenised", format_count(reader.stats().documents),
                   format_bytes(reader.stats().bytes));
    }
  }
  for (auto& writer : writers) writer->commit();
  result.stats = reader.stats();
  result.files = reader.files().size();
  return result;
}

// Step 2 given (prepare.subdomain_of, the paper's Table 4): each category's subdomain is its ID - 1.
// Every category of the corpus must be named exactly once, and every subdomain must get one.
std::vector<int> given_subdomains(const PrepareSettings& s, const std::vector<std::string>& names) {
  std::vector<int> subdomain(names.size(), -1);
  std::vector<std::string> unknown;
  for (const auto& [category, id] : s.subdomain_of) {
    const auto it = std::find(names.begin(), names.end(), category);
    if (it == names.end()) {
      const std::string suggestion = nearest_word(category, names);
      unknown.push_back("'" + category + "'" + (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
      continue;
    }
    subdomain[static_cast<std::size_t>(it - names.begin())] = id - 1;
  }
  if (!unknown.empty()) {
    throw ConfigError("prepare.subdomain_of names " + std::to_string(unknown.size()) +
                          " categories the corpus does not hold: " + join(unknown, ", "),
                      "spell them as the corpus's category field does, or remove them");
  }
  std::vector<std::string> missing;
  for (std::size_t c = 0; c < names.size(); ++c) {
    if (subdomain[c] < 0) missing.push_back(names[c]);
  }
  if (!missing.empty()) {
    throw ConfigError("prepare.subdomain_of gives no subdomain to " + std::to_string(missing.size()) +
                          " categories of the corpus: " + join(missing, ", "),
                      "name every category once, or leave them out of the corpus with prepare.categories");
  }
  for (int d = 0; d < s.num_subdomains; ++d) {
    if (std::find(subdomain.begin(), subdomain.end(), d) == subdomain.end()) {
      throw ConfigError("prepare.subdomain_of gives no category to subdomain " + std::to_string(d + 1) + " of " +
                            std::to_string(s.num_subdomains) + " (prepare.num_subdomains)",
                        "every subdomain ID 1.." + std::to_string(s.num_subdomains) + " needs a category");
    }
  }
  return subdomain;
}

// Step 2 (SPEC.md §2.2): categories -> subdomains. Given ones (prepare.subdomain_of) are taken
// as they are. Otherwise pinned categories are subdomains 0..P-1 in the order given, and the
// others are clustered by equal-size spectral clustering into N - P subdomains.
std::vector<int> assign_subdomains(const PrepareSettings& s, const std::vector<std::string>& names,
                                   const TokenCounts& counts, std::uint64_t seed) {
  if (!s.subdomain_of.empty()) return given_subdomains(s, names);
  const int m = static_cast<int>(names.size());
  const int n = s.num_subdomains;
  const int p = static_cast<int>(s.pinned_categories.size());
  std::vector<int> subdomain(static_cast<std::size_t>(m), -1);
  std::set<std::string> seen;
  for (int k = 0; k < p; ++k) {
    const std::string& pinned = s.pinned_categories[k];
    const auto it = std::find(names.begin(), names.end(), pinned);
    if (it == names.end()) {
      const std::string suggestion = nearest_word(pinned, names);
      throw ConfigError("pinned category '" + pinned + "' (prepare.pinned_categories) is not in the corpus",
                        suggestion.empty() ? "the corpus's categories are: " + join(names, ", ")
                                           : "did you mean '" + suggestion + "'?");
    }
    if (!seen.insert(pinned).second) throw ConfigError("category '" + pinned + "' is pinned twice");
    subdomain[static_cast<std::size_t>(it - names.begin())] = k;
  }
  if (n > m) {
    throw ConfigError("prepare.num_subdomains is " + std::to_string(n) + " but the corpus has only " +
                          std::to_string(m) + " categories",
                      "each subdomain needs at least one category: lower num_subdomains");
  }
  if (p >= n && m > p) {
    throw ConfigError(
        std::to_string(p) + " pinned categories leave no subdomain for the other " + std::to_string(m - p),
        "pin fewer categories than prepare.num_subdomains");
  }
  std::vector<std::size_t> free_categories;
  for (std::size_t c = 0; c < names.size(); ++c) {
    if (subdomain[c] < 0) free_categories.push_back(c);
  }
  if (free_categories.empty()) return subdomain;

  // SPEC.md §2.1: category TF-IDF with every one of the M categories a document of the idf.
  SquareMatrix distances{free_categories.size(), cosine_distances_among(counts, free_categories)};
  EqualSizeClusteringOptions options;
  options.clusters = n - p;
  options.neighbors = s.neighbors;
  options.sizes = s.cluster_sizes;
  options.tolerance = s.size_tolerance;
  options.equity_fraction = s.equity_fraction;
  options.seed = seed;
  const auto labels = equal_size_spectral_clustering(distances, options);
  for (std::size_t k = 0; k < free_categories.size(); ++k) subdomain[free_categories[k]] = p + labels[k];
  return subdomain;
}

// Fisher-Yates with a fixed generator, so the split is the same on every platform.
void shuffle(std::vector<std::pair<std::size_t, std::uint64_t>>& items, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = items.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(items[i - 1], items[j]);
  }
}

// The paper numbers its subdomains from 1, the clustered ones first and the pinned ones last
// (Table 4: 1-5 clustered, 6-8 the pinned 国税, 金融・保険, 地方財政); svmoe's pinned ones are
// 0..P-1. The tables print the paper's ID beside svmoe's where it is known: a pinned subdomain's,
// and every given one's (prepare.subdomain_of: ID = index + 1). A clustered subdomain has none:
// the clustering numbers its clusters arbitrarily, so "-" (and a note under the table).
struct PaperIds {
  std::size_t subdomains = 0, pinned = 0;
  bool given = false;
  std::string cell(std::size_t subdomain) const {
    if (given) return std::to_string(subdomain + 1);
    if (subdomain < pinned) return std::to_string(subdomains - pinned + subdomain + 1);
    return "-";
  }
  std::string note() const {
    if (given) return "\nSubdomains as prepare.subdomain_of gives them (paper ID = subdomain + 1).\n";
    return "\nA clustered subdomain has no paper ID (the clustering numbers its clusters arbitrarily); "
           "prepare.subdomain_of imposes the paper's Table 4.\n";
  }
};

std::string markdown_table1(const std::vector<SubdomainSummary>& subdomains, const PaperIds& ids) {
  auto millions = [](std::uint64_t tokens) { return fmt::format("{:.3f}", static_cast<double>(tokens) / 1e6); };
  std::string out =
      "| subdomain | categories | train (M tokens) | valid (M tokens) | test (M tokens) | paper ID |\n"
      "|---|---|---|---|---|---|\n";
  for (std::size_t n = 0; n < subdomains.size(); ++n) {
    const auto& d = subdomains[n];
    out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", n, d.categories.size(), millions(d.train.tokens),
                       millions(d.valid.tokens), millions(d.test.tokens), ids.cell(n));
  }
  return out + ids.note();
}

std::string markdown_table4(const std::vector<SubdomainSummary>& subdomains, const PaperIds& ids) {
  std::string out = "| subdomain | categories | paper ID |\n|---|---|---|\n";
  for (std::size_t n = 0; n < subdomains.size(); ++n) {
    out += fmt::format("| {} | {} | {} |\n", n, join(subdomains[n].categories, ", "), ids.cell(n));
  }
  return out + ids.note();
}

Json split_json(const SplitSummary& split) { return {{"documents", split.documents}, {"tokens", split.tokens}}; }

// Step 1's categories, sorted by name: their names, token counts and index in the corpus.
struct SortedCategories {
  std::vector<std::string> names;
  TokenCounts counts;
  std::vector<std::size_t> corpus_index;
};

SortedCategories sort_categories(TokenisedCorpus& corpus, const PrepareSettings& s) {
  if (corpus.category_names.empty()) {
    throw FormatError("the corpus holds no documents (" + std::to_string(corpus.stats.lines) + " lines, " +
                          std::to_string(corpus.stats.empty_documents) + " empty, " +
                          std::to_string(corpus.stats.bad_lines) + " bad)",
                      "check prepare.corpus and the field names prepare.text_field / prepare.category_field");
  }
  for (const auto& wanted : s.categories) {
    if (std::find(corpus.category_names.begin(), corpus.category_names.end(), wanted) == corpus.category_names.end()) {
      throw ConfigError("category '" + wanted + "' (prepare.categories) has no document in the corpus",
                        "check its spelling, or remove it from prepare.categories");
    }
  }
  SortedCategories sorted;
  sorted.corpus_index.resize(corpus.category_names.size());
  std::iota(sorted.corpus_index.begin(), sorted.corpus_index.end(), 0);
  std::sort(sorted.corpus_index.begin(), sorted.corpus_index.end(),
            [&](std::size_t a, std::size_t b) { return corpus.category_names[a] < corpus.category_names[b]; });
  for (const auto c : sorted.corpus_index) {
    sorted.names.push_back(corpus.category_names[c]);
    sorted.counts.push_back(std::move(corpus.counts[c]));
  }
  return sorted;
}

// Each category's summary, and the categories of each subdomain.
void summarise_categories(const SortedCategories& categories, const std::vector<TokenShard>& shards,
                          const std::vector<int>& subdomain_of, const PrepareSettings& s, PrepareResult& result) {
  for (std::size_t k = 0; k < categories.names.size(); ++k) {
    CategorySummary category;
    category.name = categories.names[k];
    category.subdomain = subdomain_of[k];
    category.pinned =
        std::find(s.pinned_categories.begin(), s.pinned_categories.end(), category.name) != s.pinned_categories.end();
    category.documents = shards[k].documents();
    for (const auto count : categories.counts[k]) category.tokens += count;
    result.categories.push_back(category);
    result.subdomains[static_cast<std::size_t>(subdomain_of[k])].categories.push_back(category.name);
  }
}

// Step 3 for subdomain d (SPEC.md §2.3): its documents shuffled with the seed and split into
// train, valid and test shards; returns the token counts of each split (special tokens left
// out), the TF-IDF's input: [split][vocab] in DataSplit order.
TokenCounts write_subdomain_shards(const fs::path& partial, int d, const std::vector<TokenShard>& category_shards,
                                   const std::vector<int>& subdomain_of, const std::set<std::int32_t>& specials,
                                   const PrepareSettings& s, std::uint64_t seed, std::size_t vocab,
                                   SubdomainSummary& summary) {
  std::vector<std::pair<std::size_t, std::uint64_t>> documents;  // (category, document)
  for (std::size_t k = 0; k < category_shards.size(); ++k) {
    if (subdomain_of[k] != d) continue;
    for (std::uint64_t doc = 0; doc < category_shards[k].documents(); ++doc) documents.emplace_back(k, doc);
  }
  shuffle(documents, seed + static_cast<std::uint64_t>(d));
  const auto total = documents.size();
  const auto valid = static_cast<std::size_t>(std::llround(total * s.valid_fraction));
  const auto test = static_cast<std::size_t>(std::llround(total * s.test_fraction));
  const std::size_t sizes[3] = {total - std::min(total, valid + test), std::min(valid, total),
                                std::min(test, total - std::min(valid, total))};
  fs::create_directories(shard_prefix(partial, d, "train").parent_path());
  TokenCounts split_counts(3, std::vector<std::uint64_t>(vocab, 0));
  std::size_t next = 0;
  SplitSummary* split_summaries[3] = {&summary.train, &summary.valid, &summary.test};
  for (int split = 0; split < 3; ++split) {  // in DataSplit order
    TokenShardWriter writer(shard_prefix(partial, d, enum_name(static_cast<DataSplit>(split))));
    for (std::size_t i = 0; i < sizes[split]; ++i, ++next) {
      const auto [k, doc] = documents[next];
      const auto ids = category_shards[k].document(doc);
      writer.add_document(ids);
      for (const auto id : ids) {
        if (!specials.count(id)) ++split_counts[static_cast<std::size_t>(split)][static_cast<std::size_t>(id)];
      }
    }
    writer.commit();
    split_summaries[split]->documents = writer.documents();
    split_summaries[split]->tokens = writer.tokens();
  }
  return split_counts;
}

// Step 4, the router's teacher (SPEC.md §2.4): subdomain TF-IDF over the training splits, each
// token's column normalised to sum 1, written to tfidf.safetensors with every split's counts
// (the teacher's variants, train_router.teacher_*, are computed from them). Returns how many
// tokens of the vocabulary have no target.
std::uint64_t write_router_teacher(const fs::path& partial, const std::vector<TokenCounts>& split_counts,
                                   std::size_t vocab) {
  const auto n = static_cast<std::int64_t>(split_counts.size());
  TokenCounts train_counts;
  for (const auto& subdomain : split_counts) train_counts.push_back(subdomain[0]);
  const auto subdomain_rows = tfidf_rows(train_counts);
  const TfidfTargets targets = normalise_token_columns(subdomain_rows, static_cast<std::int64_t>(vocab));
  torch::Tensor tfidf = torch::zeros({n, static_cast<std::int64_t>(vocab)}, torch::kFloat32);
  for (std::int64_t d = 0; d < n; ++d) {
    const auto& row = subdomain_rows[static_cast<std::size_t>(d)];
    for (std::size_t i = 0; i < row.ids.size(); ++i) tfidf[d][row.ids[i]] = static_cast<float>(row.values[i]);
  }
  const TfidfTargetTensors teacher = teacher_tensors(targets, n);
  std::uint64_t untargeted = 0;
  for (const bool has : targets.has_target) untargeted += has ? 0 : 1;
  torch::Tensor token_counts = torch::zeros({3, n, static_cast<std::int64_t>(vocab)}, torch::kInt64);
  auto counts = token_counts.accessor<std::int64_t, 3>();
  for (std::int64_t d = 0; d < n; ++d) {
    for (std::int64_t split = 0; split < 3; ++split) {
      const auto& row = split_counts[static_cast<std::size_t>(d)][static_cast<std::size_t>(split)];
      for (std::size_t t = 0; t < vocab; ++t) {
        counts[split][d][static_cast<std::int64_t>(t)] = static_cast<std::int64_t>(row[t]);
      }
    }
  }
  write_tfidf_file(partial, teacher, tfidf, token_counts);
  return untargeted;
}

// Step 5: manifest.json's content (io/dataset_directory.h adds format and version).
Json manifest_json(const PrepareResult& result, const PrepareSettings& s, const RuntimeSettings& runtime,
                   const Tokenizer& tokenizer, const fs::path& tokenizer_copy, const fs::path& partial,
                   const TokenisedCorpus& corpus, std::uint64_t untargeted, const Json& config_json) {
  Json categories = Json::array();
  for (const auto& c : result.categories) {
    categories.push_back({{"name", c.name},
                          {"subdomain", c.subdomain},
                          {"pinned", c.pinned},
                          {"documents", c.documents},
                          {"tokens", c.tokens}});
  }
  Json subdomains = Json::array();
  for (std::size_t d = 0; d < result.subdomains.size(); ++d) {
    const auto& sd = result.subdomains[d];
    subdomains.push_back(
        {{"index", d},
         {"categories", sd.categories},
         {"splits",
          {{"train", split_json(sd.train)}, {"valid", split_json(sd.valid)}, {"test", split_json(sd.test)}}}});
  }
  return {
      {"num_subdomains", s.num_subdomains},
      {"vocab_size", tokenizer.vocab_size()},
      {"seed", runtime.seed},
      {"tokenizer",
       {{"description", tokenizer.description()},
        // A trained tokenizer's path is inside DATASET.partial, which is renamed: say what it is.
        {"source",
         s.tokenizer_train.enabled ? "trained on the corpus (prepare.tokenizer_train)" : s.tokenizer.string()},
        {"files", fs::relative(tokenizer_copy, partial).string()},
        {"sha256", sha256_file_hex(tokenizer_file(tokenizer_copy))},
        {"bos_id", tokenizer.bos_id() ? Json(*tokenizer.bos_id()) : Json()},
        {"eos_id", tokenizer.eos_id() ? Json(*tokenizer.eos_id()) : Json()}}},
      {"shards",
       {{"layout", "subdomain_N/{train,valid,test}.{bin,idx}"}, {"add_bos", s.add_bos}, {"add_eos", s.add_eos}}},
      {"tfidf", {{"file", dataset_tfidf_path(partial).filename().string()}, {"tokens_without_target", untargeted}}},
      {"corpus",
       {{"files", corpus.files},
        {"lines", corpus.stats.lines},
        {"documents", corpus.stats.documents},
        {"empty_documents", corpus.stats.empty_documents},
        {"bad_lines_skipped", corpus.stats.bad_lines},
        {"unknown_category_documents_skipped", corpus.unknown},
        {"bytes", corpus.stats.bytes}}},
      {"categories", categories},
      {"subdomains", subdomains},
      {"config", config_json},
  };
}

void warn_about_skipped(const TokenisedCorpus& corpus) {
  if (corpus.stats.empty_documents > 0 || corpus.stats.bad_lines > 0) {
    spdlog::warn("prepare: skipped {} empty document(s) and {} bad line(s)", corpus.stats.empty_documents,
                 corpus.stats.bad_lines);
  }
  if (!corpus.unknown.empty()) {
    std::vector<std::string> skipped;
    std::uint64_t total = 0;
    for (const auto& [category, documents] : corpus.unknown) {
      skipped.push_back(category + " (" + std::to_string(documents) + ")");
      total += documents;
    }
    spdlog::warn("prepare: skipped {} document(s) of {} categories that prepare.categories does not list: {}", total,
                 skipped.size(), join(skipped, ", "));
  }
}

// SPEC.md §2, step by step, into DATASET.partial.
PrepareResult prepare_into(const fs::path& partial, const PrepareSettings& s, const RuntimeSettings& runtime,
                           const Json& config_json) {
  const fs::path temporary = partial / "tmp";
  fs::create_directories(temporary);
  const fs::path tokenizer_source = s.tokenizer_train.enabled ? train_tokenizer(s, runtime, partial) : s.tokenizer;
  const auto tokenizer = load_tokenizer(tokenizer_source);
  const fs::path tokenizer_copy =
      s.tokenizer_train.enabled ? tokenizer_source : copy_tokenizer(tokenizer_source, partial);
  spdlog::info("prepare: tokenizer {}", tokenizer->description());
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  auto step_start = Clock::now();

  // 1. Tokenise; categories sorted by name from here on.
  TokenisedCorpus corpus = tokenise_corpus(s, *tokenizer, temporary);
  spdlog::info("prepare: tokenised {} documents ({}) in {:.2f} s", format_count(corpus.stats.documents),
               format_bytes(corpus.stats.bytes), seconds_since(step_start));
  step_start = Clock::now();
  const SortedCategories categories = sort_categories(corpus, s);

  // 2. Cluster the categories into subdomains.
  const std::vector<int> subdomain_of = assign_subdomains(s, categories.names, categories.counts, runtime.seed);
  spdlog::info("prepare: category TF-IDF and clustering of {} categories in {:.2f} s", categories.names.size(),
               seconds_since(step_start));
  step_start = Clock::now();

  // 3. Split each subdomain's documents and write its shards; count its training tokens.
  PrepareResult result;
  result.dataset = s.output;
  result.subdomains.resize(static_cast<std::size_t>(s.num_subdomains));
  std::vector<TokenShard> category_shards;
  for (const auto c : categories.corpus_index) {
    category_shards.push_back(TokenShard::open(temporary / ("category_" + std::to_string(c))));
  }
  summarise_categories(categories, category_shards, subdomain_of, s, result);
  std::set<std::int32_t> specials;
  if (s.add_bos) specials.insert(*tokenizer->bos_id());
  if (s.add_eos) specials.insert(*tokenizer->eos_id());
  const auto vocab = static_cast<std::size_t>(tokenizer->vocab_size());
  std::vector<TokenCounts> split_counts;  // [subdomain][split][vocab]
  for (int d = 0; d < s.num_subdomains; ++d) {
    split_counts.push_back(write_subdomain_shards(partial, d, category_shards, subdomain_of, specials, s, runtime.seed,
                                                  vocab, result.subdomains[static_cast<std::size_t>(d)]));
  }
  category_shards.clear();
  fs::remove_all(temporary);

  // 4. The router's teacher.
  const std::uint64_t untargeted = write_router_teacher(partial, split_counts, vocab);

  // 5. Manifest and tables.
  const PaperIds paper_ids{result.subdomains.size(), s.pinned_categories.size(), !s.subdomain_of.empty()};
  result.table1_markdown = markdown_table1(result.subdomains, paper_ids);
  result.table4_markdown = markdown_table4(result.subdomains, paper_ids);
  write_dataset_manifest(
      partial, manifest_json(result, s, runtime, *tokenizer, tokenizer_copy, partial, corpus, untargeted, config_json));
  write_file_atomically(partial / "table1.md", result.table1_markdown);
  write_file_atomically(partial / "table4.md", result.table4_markdown);
  spdlog::info("prepare: splits, shards and TF-IDF targets in {:.2f} s", seconds_since(step_start));
  warn_about_skipped(corpus);
  spdlog::info("prepare: {} tokens of the vocabulary have no TF-IDF target", untargeted);
  return result;
}

}  // namespace

PrepareResult run_prepare(const PrepareSettings& s, const RuntimeSettings& runtime, const Json& config_json) {
  list_corpus_files(s.corpus);  // fail on a missing input before anything is written
  const DirectoryLock lock = DirectoryLock::acquire(s.output, "prepare");
  const fs::path partial = begin_directory(s.output);
  PrepareResult result;
  try {
    result = prepare_into(partial, s, runtime, config_json);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(partial, ec);  // nothing half-written stays behind
    throw;
  }
  commit_directory(s.output);
  spdlog::info("prepare: wrote {} ({} categories -> {} subdomains)", s.output.string(), result.categories.size(),
               result.subdomains.size());
  return result;
}

}  // namespace svmoe
