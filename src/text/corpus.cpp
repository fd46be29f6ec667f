#include "svmoe/text/corpus.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {
bool is_corpus_file(const fs::path& path) {
  const std::string name = path.filename().string();
  return ends_with(name, ".jsonl") || ends_with(name, ".jsonl.gz");
}
}  // namespace

std::vector<fs::path> list_corpus_files(const std::vector<fs::path>& inputs) {
  if (inputs.empty()) throw ConfigError("no corpus given", "set prepare.corpus to JSONL files or directories of them");
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::recursive_directory_iterator(input)) {
        if (entry.is_regular_file() && is_corpus_file(entry.path())) found.push_back(entry.path());
      }
      if (found.empty()) throw IoError("corpus directory '" + input.string() + "' holds no .jsonl or .jsonl.gz file");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(input)) {
      files.push_back(input);
    } else {
      throw IoError("corpus file '" + input.string() + "' does not exist", "check prepare.corpus");
    }
  }
  return files;
}

CorpusReader::CorpusReader(CorpusOptions options)
    : options_(std::move(options)), files_(list_corpus_files(options_.inputs)) {}

CorpusReader::~CorpusReader() = default;

bool CorpusReader::next(Document& document) {
  while (true) {
    if (!reader_) {
      if (file_index_ >= files_.size()) return false;
      reader_ = std::make_unique<LineReader>(files_[file_index_]);
    }
    if (!reader_->next(line_)) {
      reader_.reset();
      ++file_index_;
      continue;
    }
    ++stats_.lines;
    if (line_.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line

    const std::string where = "'" + files_[file_index_].string() + "' line " + std::to_string(reader_->line_number());
    std::string problem;
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line_);
    } catch (const nlohmann::json::parse_error& e) {
      problem = std::string("is not valid JSON (") + e.what() + ")";
    }
    if (problem.empty()) {
      if (!json.is_object()) {
        problem = "is not a JSON object";
      } else if (!json.contains(options_.text_field) || !json[options_.text_field].is_string()) {
        problem = "has no string field \"" + options_.text_field + "\"";
      } else if (!json.contains(options_.category_field) || !json[options_.category_field].is_string()) {
        problem = "has no string field \"" + options_.category_field + "\"";
      }
    }
    if (!problem.empty()) {
      if (options_.skip_bad_lines) {
        ++stats_.bad_lines;
        continue;
      }
      throw FormatError(where + " " + problem,
                        "fix the line, set prepare.text_field / prepare.category_field to the corpus's field names, or "
                        "set prepare.skip_bad_lines: true to skip and count such lines");
    }
    document.text = json[options_.text_field].get<std::string>();
    document.category = json[options_.category_field].get<std::string>();
    if (document.text.empty()) {
      ++stats_.empty_documents;
      continue;
    }
    ++stats_.documents;
    stats_.bytes += document.text.size();
    return true;
  }
}

}  // namespace svmoe
