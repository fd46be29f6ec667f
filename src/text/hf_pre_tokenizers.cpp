// tokenizer.json pre-tokenizers (tokenizers/src/pre_tokenizers), with the split behaviours of
// NormalizedString::split.
#include <nlohmann/json.hpp>

#include <array>
#include <utility>

#include "svmoe/text/hf_components.h"
#include "svmoe/text/regex.h"
#include "svmoe/text/unicode.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;
using Range = std::pair<std::size_t, std::size_t>;

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// What to keep of a string cut into matches and non-matches (SplitDelimiterBehavior).
std::vector<Range> apply_behavior(const std::vector<PatternPiece>& pieces, SplitBehavior behavior) {
  std::vector<Range> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& p : pieces) out.emplace_back(p.begin, p.end);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& p : pieces) {
        if (!p.is_match) out.emplace_back(p.begin, p.end);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const auto& p : pieces) {
        if (p.is_match == previous_match && !out.empty())
          out.back().second = p.end;
        else
          out.emplace_back(p.begin, p.end);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& p : pieces) {
        if (p.is_match && !previous_match && !out.empty())
          out.back().second = p.end;
        else
          out.emplace_back(p.begin, p.end);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().first = it->begin;
        else
          out.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

// Each character for which `matches` holds is a match of its own (HF's Pattern for char / Fn(char)).
template <typename Predicate>
std::vector<PatternPiece> find_char_matches(std::string_view text, Predicate&& matches) {
  std::vector<PatternPiece> pieces;
  if (text.empty()) return {{0, 0, false}};
  std::size_t last = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = unicode::decode_at(text, i);
    if (matches(c.code_point)) {
      if (last < i) pieces.push_back({last, i, false});
      pieces.push_back({i, i + c.length, true});
      last = i + c.length;
    }
    i += c.length;
  }
  if (last < text.size()) pieces.push_back({last, text.size(), false});
  return pieces;
}

std::vector<PatternPiece> inverted(std::vector<PatternPiece> pieces) {
  for (auto& p : pieces) p.is_match = !p.is_match;
  return pieces;
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  out.reserve(text.size());
  std::size_t start = 0;
  for (std::size_t found = text.find(from); found != std::string::npos; found = text.find(from, start)) {
    out.append(text, start, found - start);
    out += to;
    start = found + from.size();
  }
  out.append(text, start, std::string::npos);
  return out;
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<TextSplit>& splits) const override {
    for (const auto& step : steps_) step->pre_tokenize(splits);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Spaces become the replacement character ("▁"), which is prepended as the scheme says and
// starts each piece when `split` is set.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {
    replacement_code_point_ = unicode::decode_at(replacement_, 0).code_point;
  }
  void pre_tokenize(std::vector<TextSplit>& splits) const override {
    split_each(splits, [&](TextSplit& piece) {
      if (piece.input_start_bytes > 0) {
        piece.input_start_bytes = replace_all(piece.text.substr(0, piece.input_start_bytes), " ", replacement_).size();
      }
      piece.text = replace_all(piece.text, " ", replacement_);
      // "first": the piece's first character is the input's (tokenizers' offsets_original().0 == 0).
      const bool prepend = prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && piece.input_start_bytes > 0);
      if (prepend && !piece.text.empty() && !starts_with(piece.text, replacement_)) {
        piece.text.insert(0, replacement_);  // aligned with the character it precedes
        if (piece.input_start_bytes > 0) piece.input_start_bytes += replacement_.size();
      }
      if (!split_) return std::vector<Range>{{0, piece.text.size()}};
      return apply_behavior(find_char_matches(piece.text, [&](char32_t c) { return c == replacement_code_point_; }),
                            SplitBehavior::kMergedWithNext);
    });
  }

 private:
  std::string replacement_;
  char32_t replacement_code_point_;
  Prepend prepend_;
  bool split_;
};

// GPT-2's byte-to-printable-character map (bytes_char in byte_level.rs).
std::array<std::string, 256> byte_level_alphabet() {
  std::array<std::string, 256> chars;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    char32_t code_point = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    unicode::append_utf8(chars[b], code_point);
  }
  return chars;
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const JsonLocation& where)
      : add_prefix_space_(add_prefix_space), alphabet_(byte_level_alphabet()) {
    if (use_regex) {
      gpt2_pattern_ = std::make_unique<Regex>(
          R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", where.path);
    }
  }
  void pre_tokenize(std::vector<TextSplit>& splits) const override {
    split_each(splits, [&](TextSplit& piece) {
      if (add_prefix_space_ && !piece.text.empty() && piece.text[0] != ' ') {
        piece.text.insert(0, " ");
        if (piece.input_start_bytes > 0) ++piece.input_start_bytes;
      }
      if (!gpt2_pattern_) return std::vector<Range>{{0, piece.text.size()}};
      return apply_behavior(gpt2_pattern_->find_matches(piece.text), SplitBehavior::kIsolated);
    });
    for (auto& piece : splits) {
      if (piece.added_token_id) continue;
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (std::size_t i = 0; i < piece.text.size(); ++i) {
        mapped += alphabet_[static_cast<unsigned char>(piece.text[i])];
        if (i + 1 == piece.input_start_bytes) piece.input_start_bytes = mapped.size();
      }
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> gpt2_pattern_;
  std::array<std::string, 256> alphabet_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<TextSplit>& splits) const override {
    split_each(splits, [&](TextSplit& piece) {
      auto pieces = pattern_.find_matches(piece.text);
      return apply_behavior(invert_ ? inverted(std::move(pieces)) : pieces, behavior_);
    });
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Numeric characters (Rust's char::is_numeric) split off, one by one or as runs.
class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual_digits) : individual_digits_(individual_digits) {}
  void pre_tokenize(std::vector<TextSplit>& splits) const override {
    split_each(splits, [&](TextSplit& piece) {
      return apply_behavior(find_char_matches(piece.text, unicode::is_numeric),
                            individual_digits_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
    });
  }

 private:
  bool individual_digits_;
};

SplitBehavior parse_behavior(const Json& node, const JsonLocation& where) {
  const std::string name = node.value("behavior", std::string());
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  where.at("behavior")
      .fail("is '" + name + "', expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

std::unique_ptr<PreTokenizer> parse_metaspace(const Json& node, const JsonLocation& where) {
  if (!node.contains("replacement") || !node["replacement"].is_string() ||
      node["replacement"].get<std::string>().empty()) {
    where.at("replacement").fail("is missing or empty");
  }
  auto prepend = MetaspacePreTokenizer::Prepend::kAlways;
  const std::string scheme = node.value("prepend_scheme", std::string("always"));
  if (scheme == "first")
    prepend = MetaspacePreTokenizer::Prepend::kFirst;
  else if (scheme == "never")
    prepend = MetaspacePreTokenizer::Prepend::kNever;
  else if (scheme != "always")
    where.at("prepend_scheme").fail("is '" + scheme + "', expected always, first or never");
  if (node.contains("add_prefix_space") && node["add_prefix_space"].is_boolean() &&
      !node["add_prefix_space"].get<bool>()) {
    prepend = MetaspacePreTokenizer::Prepend::kNever;  // the older spelling of prepend_scheme "never"
  }
  return std::make_unique<MetaspacePreTokenizer>(node["replacement"].get<std::string>(), prepend,
                                                 node.value("split", true));
}

}  // namespace

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json& node, const JsonLocation& where) {
  if (node.is_null()) return nullptr;
  const std::string type = where.type_of(node);
  if (type == "Sequence") {
    return std::make_unique<SequencePreTokenizer>(
        parse_steps<PreTokenizer>(node, "pretokenizers", where, parse_pre_tokenizer));
  }
  if (type == "Metaspace") return parse_metaspace(node, where);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(node.value("add_prefix_space", true), node.value("use_regex", true),
                                                   where);
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(parse_pattern(node, where), parse_behavior(node, where),
                                               node.value("invert", false));
  }
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(node.value("individual_digits", false));
  where.unsupported("a '" + type + "' pre-tokenizer");
}

}  // namespace svmoe
