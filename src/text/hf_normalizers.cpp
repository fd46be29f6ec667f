// tokenizer.json normalizers (tokenizers/src/normalizers), and the JSON locations all
// components report errors with.
#include <nlohmann/json.hpp>

#include "svmoe/text/hf_components.h"
#include "svmoe/text/regex.h"
#include "svmoe/text/unicode.h"
#include "svmoe/util/error.h"

namespace svmoe {

void JsonLocation::fail(const std::string& problem) const {
  throw FormatError("'" + file + "': " + (path.empty() ? "the top level" : path) + " " + problem,
                    "is it a tokenizer.json written by Hugging Face tokenizers?");
}

void JsonLocation::unsupported(const std::string& what) const {
  throw UnsupportedError("'" + file + "': " + path + " is " + what + ", which svmoe does not implement",
                         "docs/tokenizers.md lists the tokenizer.json components svmoe runs; a model whose tokenizer "
                         "uses another cannot be tokenized by svmoe yet (please report it with the model's name)");
}

std::string JsonLocation::type_of(const nlohmann::json& node) const {
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) fail("has no \"type\"");
  return node["type"].get<std::string>();
}

std::string JsonLocation::string_field(const nlohmann::json& node, const char* key) const {
  if (!node.contains(key) || !node[key].is_string()) at(key).fail("is missing or not a string");
  return node[key].get<std::string>();
}

using Json = nlohmann::json;

Regex parse_pattern(const Json& node, const JsonLocation& where) {
  const Json& pattern = node.contains("pattern") ? node["pattern"] : Json();
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    return Regex::literal(pattern["String"].get<std::string>(), where.at("pattern").path);
  }
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    return Regex(pattern["Regex"].get<std::string>(), "'" + where.file + "': " + where.at("pattern").path);
  }
  where.at("pattern").fail("is " + pattern.dump() + ", expected {\"String\": ...} or {\"Regex\": ...}");
}

namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Regex pattern_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Strips White_Space characters at either end.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    std::size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        const auto c = unicode::decode_at(text, begin);
        if (!unicode::is_whitespace(c.code_point)) break;
        begin += c.length;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        if (!unicode::is_whitespace(unicode::decode_at(text, start).code_point)) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalizationForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = unicode::normalize(text, form_); }

 private:
  unicode::NormalizationForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = unicode::lowercase(text); }
};

// Removes combining marks (Mn, Mc, Me), usually after NFD.
class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      const auto c = unicode::decode_at(text, i);
      if (!unicode::is_combining_mark(c.code_point)) out.append(text, i, c.length);
      i += c.length;
    }
    text = std::move(out);
  }
};

}  // namespace

void normalize_split(const Normalizer& normalizer, TextSplit& piece) {
  if (piece.input_start_bytes == 0) {
    normalizer.normalize(piece.text);
    return;
  }
  // What the normalizer makes of the first character alone is what comes from it in the whole,
  // unless the normalizer joins it with what follows (composition, a match across it): then the
  // first character of the result, which tokenizers aligns with the start too.
  std::string head = piece.text.substr(0, piece.input_start_bytes);
  normalizer.normalize(head);
  normalizer.normalize(piece.text);
  if (head.empty() || piece.text.empty())
    piece.input_start_bytes = 0;
  else if (piece.text.compare(0, head.size(), head) == 0)
    piece.input_start_bytes = head.size();
  else
    piece.input_start_bytes = unicode::char_length(static_cast<unsigned char>(piece.text[0]));
}

std::unique_ptr<Normalizer> parse_normalizer(const Json& node, const JsonLocation& where) {
  if (node.is_null()) return nullptr;
  const std::string type = where.type_of(node);
  if (type == "Sequence") {
    return std::make_unique<SequenceNormalizer>(parse_steps<Normalizer>(node, "normalizers", where, parse_normalizer));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(parse_pattern(node, where), where.string_field(node, "content"));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(where.string_field(node, "prepend"));
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(node.value("strip_left", true), node.value("strip_right", true));
  }
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  where.unsupported("a '" + type + "' normalizer");
}

}  // namespace svmoe
