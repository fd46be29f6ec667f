// The components of a Hugging Face tokenizer.json, each as the `tokenizers` library (0.23)
// defines it (docs/tokenizers.md lists them):
//   normalizers     Sequence, Replace (String or Regex), Prepend, Strip, StripAccents,
//                   NFC, NFD, NFKC, NFKD, Lowercase
//   pre-tokenizers  Sequence, Metaspace, ByteLevel, Split (String or Regex), Digits
//   decoders        Sequence, ByteFallback, Replace, Fuse, Strip, Metaspace, ByteLevel
// The pipeline that runs them (added tokens, model, post-processor) is hf_tokenizer.cpp.
// A component svmoe does not implement is an UnsupportedError naming it and its JSON path.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "svmoe/text/regex.h"

namespace svmoe {

// Where a component sits in a tokenizer.json, for errors: the file and the JSON path.
struct JsonLocation {
  std::string file;
  std::string path;
  JsonLocation at(const std::string& key) const { return {file, path.empty() ? key : path + "." + key}; }
  JsonLocation at(std::size_t index) const { return {file, path + "[" + std::to_string(index) + "]"}; }
  [[noreturn]] void fail(const std::string& problem) const;
  [[noreturn]] void unsupported(const std::string& what) const;
  // node["type"] / node[key] as a string, or a FormatError naming this location.
  std::string type_of(const nlohmann::json& node) const;
  std::string string_field(const nlohmann::json& node, const char* key) const;
};

// One piece of the text being tokenized (HF's PreTokenizedString split): normalized text; how
// many of its leading bytes come from the input's first character (tokenizers aligns every
// normalized character with the original ones; Metaspace's prepend_scheme "first" asks whether
// a piece's first character aligns with offset 0, which after NFKD can hold for several pieces:
// "⒛" -> "2", "0", "."); and the id of the added token it is, if it is one (then nothing
// changes it any more).
struct TextSplit {
  std::string text;
  std::size_t input_start_bytes = 0;
  std::optional<std::int32_t> added_token_id;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Normalizes a piece and tracks which of its leading bytes come from the input's first
// character: those the normalizer makes of that character's own bytes.
void normalize_split(const Normalizer& normalizer, TextSplit& piece);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits each piece that is not an added token; empty pieces are dropped, as HF does.
  virtual void pre_tokenize(std::vector<TextSplit>& splits) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// node["pattern"]: {"String": s} (matched literally, as HF escapes it) or {"Regex": r}.
Regex parse_pattern(const nlohmann::json& node, const JsonLocation& where);

// The steps of a Sequence component: node[key] parsed item by item with `parse` (null items
// dropped), each item's errors naming its index.
template <typename Component, typename Parse>
std::vector<std::unique_ptr<Component>> parse_steps(const nlohmann::json& node, const char* key,
                                                    const JsonLocation& where, Parse&& parse) {
  const JsonLocation list = where.at(key);
  if (!node.contains(key) || !node[key].is_array()) list.fail("is missing or not a list");
  std::vector<std::unique_ptr<Component>> steps;
  for (std::size_t i = 0; i < node[key].size(); ++i) {
    if (auto step = parse(node[key][i], list.at(i))) steps.push_back(std::move(step));
  }
  return steps;
}

// A null node gives nullptr (no such component).
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& node, const JsonLocation& where);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& node, const JsonLocation& where);
std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& node, const JsonLocation& where);

// Applies `split` to each piece that is not an added token and drops the empty results
// (PreTokenizedString::split). `split` gets the piece and returns [begin, end) byte ranges.
template <typename SplitFunction>
void split_each(std::vector<TextSplit>& splits, SplitFunction&& split) {
  std::vector<TextSplit> out;
  out.reserve(splits.size());
  for (auto& piece : splits) {
    if (piece.added_token_id) {
      out.push_back(std::move(piece));
      continue;
    }
    for (const auto& [begin, end] : split(piece)) {
      if (end <= begin) continue;
      const std::size_t from_start =
          begin < piece.input_start_bytes ? std::min(piece.input_start_bytes, end) - begin : 0;
      out.push_back({piece.text.substr(begin, end - begin), from_start, std::nullopt});
    }
  }
  splits = std::move(out);
}

}  // namespace svmoe
