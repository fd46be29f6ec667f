// tokenizer.json decoders (tokenizers/src/decoders): each maps the list of token strings to a
// new list; the tokenizer joins the last one.
#include <nlohmann/json.hpp>

#include <unordered_map>

#include "svmoe/text/hf_components.h"
#include "svmoe/text/unicode.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) token = pattern_.replace_all(token, content_);
    return tokens;
  }

 private:
  Regex pattern_;
  std::string content_;
};

// The byte of a "<0xXX>" piece (Rust's u8::from_str_radix on XX, which also takes "+X").
std::optional<unsigned char> byte_piece_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int low = digit(token[4]);
  if (low < 0) return std::nullopt;
  if (token[3] == '+') return static_cast<unsigned char>(low);
  const int high = digit(token[3]);
  if (high < 0) return std::nullopt;
  return static_cast<unsigned char>(high * 16 + low);
}

// Runs of <0xXX> pieces become their bytes when those are valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (unicode::from_utf8_lossy(bytes) == bytes) {
        out.push_back(bytes);
      } else {
        for (std::size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
    };
    for (auto& token : tokens) {
      if (const auto byte = byte_piece_value(token)) {
        bytes.push_back(static_cast<char>(*byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string fused;
    for (const auto& token : tokens) fused += token;
    return {fused};
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, std::size_t start, std::size_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) {
      std::vector<std::pair<std::size_t, char32_t>> chars;  // byte offset, code point
      for (std::size_t i = 0; i < token.size();) {
        const auto c = unicode::decode_at(token, i);
        chars.emplace_back(i, c.code_point);
        i += c.length;
      }
      std::size_t start_cut = 0;
      for (std::size_t i = 0; i < std::min(start_, chars.size()) && chars[i].second == content_; ++i) start_cut = i + 1;
      std::size_t stop_cut = chars.size();
      for (std::size_t i = 0; i < std::min(stop_, chars.size()); ++i) {
        const std::size_t index = chars.size() - i - 1;
        if (chars[index].second != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      const std::size_t begin = start_cut < chars.size() ? chars[start_cut].first : token.size();
      const std::size_t end = stop_cut < chars.size() ? chars[stop_cut].first : token.size();
      token = token.substr(begin, end - begin);
    }
    return tokens;
  }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

// The replacement character becomes a space, except in the first token, where (unless the
// prepend scheme is "never") every one is dropped, as tokenizers' Metaspace decoder does.
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first)
      : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string with = i == 0 && drop_in_first_ ? "" : " ";
      std::string out;
      std::size_t start = 0;
      for (std::size_t found = tokens[i].find(replacement_); found != std::string::npos;
           found = tokens[i].find(replacement_, start)) {
        out.append(tokens[i], start, found - start);
        out += with;
        start = found + replacement_.size();
      }
      out.append(tokens[i], start, std::string::npos);
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

// Byte-level characters back to bytes (a token with another character stays as it is), then
// the bytes as UTF-8 with invalid sequences replaced.
class ByteLevelDecoder : public Decoder {
 public:
  ByteLevelDecoder() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_of_[printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++)] = static_cast<unsigned char>(b);
    }
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      std::string mapped;
      bool all_mapped = true;
      for (std::size_t i = 0; i < token.size();) {
        const auto c = unicode::decode_at(token, i);
        const auto it = byte_of_.find(c.code_point);
        if (it == byte_of_.end()) {
          all_mapped = false;
          break;
        }
        mapped.push_back(static_cast<char>(it->second));
        i += c.length;
      }
      bytes += all_mapped ? mapped : token;
    }
    return {unicode::from_utf8_lossy(bytes)};
  }

 private:
  std::unordered_map<char32_t, unsigned char> byte_of_;
};

char32_t single_character(const std::string& text, const JsonLocation& where) {
  if (text.empty()) where.fail("is empty, expected one character");
  const auto c = unicode::decode_at(text, 0);
  if (c.length != text.size()) where.fail("is '" + text + "', expected one character");
  return c.code_point;
}

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const Json& node, const JsonLocation& where) {
  if (node.is_null()) return nullptr;
  const std::string type = where.type_of(node);
  if (type == "Sequence") {
    return std::make_unique<SequenceDecoder>(parse_steps<Decoder>(node, "decoders", where, parse_decoder));
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(parse_pattern(node, where), where.string_field(node, "content"));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_character(where.string_field(node, "content"), where.at("content")),
                                          node.value("start", std::size_t{0}), node.value("stop", std::size_t{0}));
  }
  if (type == "Metaspace") {
    const std::string replacement = where.string_field(node, "replacement");
    single_character(replacement, where.at("replacement"));
    std::string scheme = node.value("prepend_scheme", std::string("always"));
    if (node.contains("add_prefix_space") && node["add_prefix_space"].is_boolean() &&
        !node["add_prefix_space"].get<bool>()) {
      scheme = "never";
    }
    return std::make_unique<MetaspaceDecoder>(replacement, scheme != "never");
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  where.unsupported("a '" + type + "' decoder");
}

}  // namespace svmoe
