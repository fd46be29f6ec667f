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
  return ends_with(name, ".jsonl") || ends_with(name, ".jsonl.gz") || ends_with(name, ".jsonl.zst");
}

}  // namespace

// DocumentField is a member type, not in the anonymous namespace: Fields has external linkage,
// and a unity batch (which includes this file) would otherwise warn [-Wsubobject-linkage].
struct CorpusReader::Fields {
  // A document's field as prepare.text_field / prepare.category_field spell it: a top-level key
  // ("text"), or, starting with '/', a JSON pointer into nested objects ("/meta/category", RFC 6901:
  // "~1" is '/' and "~0" is '~' inside a key).
  class DocumentField {
   public:
    DocumentField(const std::string& spelling, const char* setting) : spelling_(spelling) {
      if (spelling.empty()) {
        throw ConfigError(std::string(setting) + " is empty", "name the JSON field, e.g. text or /meta/text");
      }
      if (spelling.front() != '/') return;
      try {
        pointer_ = nlohmann::json::json_pointer(spelling);
        is_pointer_ = true;
      } catch (const nlohmann::json::exception& e) {
        throw ConfigError(std::string(setting) + " is '" + spelling + "', not a valid JSON pointer (" + e.what() + ")",
                          "write each level as /key, with ~1 for a '/' and ~0 for a '~' inside a key");
      }
    }

    // The field's string value in `object`, or nullptr where it is missing or not a string.
    const std::string* find(const nlohmann::json& object) const {
      const nlohmann::json* value = nullptr;
      if (is_pointer_) {
        try {
          if (object.contains(pointer_)) value = &object.at(pointer_);
        } catch (const nlohmann::json::exception&) {  // an array index too large to be one
          value = nullptr;
        }
      } else if (const auto it = object.find(spelling_); it != object.end()) {
        value = &*it;
      }
      return value != nullptr && value->is_string() ? value->get_ptr<const std::string*>() : nullptr;
    }

    std::string describe() const { return is_pointer_ ? "at " + spelling_ : "\"" + spelling_ + "\""; }

   private:
    std::string spelling_;
    nlohmann::json::json_pointer pointer_;
    bool is_pointer_ = false;
  };

  DocumentField text, category;
};

std::vector<fs::path> list_corpus_files(const std::vector<fs::path>& inputs) {
  if (inputs.empty()) throw ConfigError("no corpus given", "set prepare.corpus to JSONL files or directories of them");
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::recursive_directory_iterator(input)) {
        if (entry.is_regular_file() && is_corpus_file(entry.path())) found.push_back(entry.path());
      }
      if (found.empty()) {
        throw IoError("corpus directory '" + input.string() + "' holds no .jsonl, .jsonl.gz or .jsonl.zst file");
      }
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
    : options_(std::move(options)),
      fields_(std::make_unique<Fields>(
          Fields{{options_.text_field, "prepare.text_field"}, {options_.category_field, "prepare.category_field"}})),
      files_(list_corpus_files(options_.inputs)) {}

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
    const std::string* text = nullptr;
    const std::string* category = nullptr;
    if (problem.empty()) {
      if (!json.is_object()) {
        problem = "is not a JSON object";
      } else if ((text = fields_->text.find(json)) == nullptr) {
        problem = "has no string field " + fields_->text.describe();
      } else if ((category = fields_->category.find(json)) == nullptr) {
        problem = "has no string field " + fields_->category.describe();
      }
    }
    if (!problem.empty()) {
      if (options_.skip_bad_lines) {
        ++stats_.bad_lines;
        continue;
      }
      throw FormatError(where + " " + problem,
                        "fix the line, set prepare.text_field / prepare.category_field to the corpus's field names "
                        "(a JSON pointer such as /meta/category for a nested one), or set prepare.skip_bad_lines: "
                        "true to skip and count such lines");
    }
    document.text = *text;
    document.category = *category;
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
