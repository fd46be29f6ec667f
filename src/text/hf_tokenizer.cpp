// A Hugging Face tokenizer.json, run as `tokenizers` runs it:
//   1. split the input on added tokens (<s>, </s>, ... matched in the raw text),
//   2. normalize each remaining segment (Prepend, Replace),
//   3. pre-tokenize it (Metaspace: spaces -> "▁", prepend "▁", optionally split),
//   4. run the model (Unigram or BPE, with byte fallback) on each piece,
//   5. post-process (TemplateProcessing: add BOS/EOS).
// Decoding runs the decoder chain (Replace, ByteFallback, Fuse, Strip, Metaspace).
// Components it does not implement are an UnsupportedError naming them.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <functional>
#include <memory>
#include <variant>

#include "svmoe/text/subword_models.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;
const std::string kMetaspace = "\xE2\x96\x81";  // "▁" U+2581

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::size_t position = 0;
  while ((position = text.find(from, position)) != std::string::npos) {
    text.replace(position, from.size(), to);
    position += to.size();
  }
  return text;
}

bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct AddedToken {
  std::int32_t id;
  std::string content;
  bool special;
  bool lstrip;
  bool rstrip;
};

// One step of the normalizer or decoder chain.
struct ReplaceStep {
  std::string pattern;
  std::string content;
};
struct PrependStep {
  std::string prefix;
};
struct StripStep {
  std::string content;
  int start;
  int stop;
};
struct ByteFallbackStep {};
struct FuseStep {};
struct MetaspaceDecodeStep {
  std::string replacement;
  bool strip_first_space;
};
using NormalizerStep = std::variant<ReplaceStep, PrependStep>;
using DecoderStep = std::variant<ReplaceStep, ByteFallbackStep, FuseStep, StripStep, MetaspaceDecodeStep>;

struct Metaspace {
  std::string replacement = kMetaspace;
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};

class TokenizerJsonParser {
 public:
  TokenizerJsonParser(const Json& json, std::string source) : json_(json), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& where, const std::string& problem) const {
    throw FormatError("'" + source_ + "': " + where + " " + problem);
  }
  [[noreturn]] void unsupported(const std::string& where, const std::string& what) const {
    throw UnsupportedError("'" + source_ + "': " + where + " is " + what + ", which svmoe does not implement",
                           "svmoe reads the tokenizer.json of SentencePiece-style models (Unigram or BPE with byte "
                           "fallback); give the model's tokenizer.model instead");
  }
  std::string type_of(const Json& node, const std::string& where) const {
    if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) fail(where, "has no \"type\"");
    return node["type"].get<std::string>();
  }
  std::string string_pattern(const Json& node, const std::string& where) const {
    if (!node.contains("pattern") || !node["pattern"].is_object() || !node["pattern"].contains("String")) {
      unsupported(where + ".pattern", "a regex pattern");
    }
    return node["pattern"]["String"].get<std::string>();
  }

  std::vector<NormalizerStep> normalizer(const Json& node, const std::string& where) const {
    std::vector<NormalizerStep> steps;
    if (node.is_null()) return steps;
    const std::string type = type_of(node, where);
    if (type == "Sequence") {
      for (std::size_t i = 0; i < node["normalizers"].size(); ++i) {
        auto inner = normalizer(node["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]");
        steps.insert(steps.end(), inner.begin(), inner.end());
      }
    } else if (type == "Prepend") {
      steps.push_back(PrependStep{node.at("prepend").get<std::string>()});
    } else if (type == "Replace") {
      steps.push_back(ReplaceStep{string_pattern(node, where), node.at("content").get<std::string>()});
    } else {
      unsupported(where, "a '" + type + "' normalizer");
    }
    return steps;
  }

  std::optional<Metaspace> pre_tokenizer(const Json& node, const std::string& where) const {
    if (node.is_null()) return std::nullopt;
    std::string type = type_of(node, where);
    const Json* metaspace = &node;
    if (type == "Sequence" && node["pretokenizers"].is_array() && node["pretokenizers"].size() == 1) {
      metaspace = &node["pretokenizers"][0];
      type = type_of(*metaspace, where + ".pretokenizers[0]");
    }
    if (type != "Metaspace") unsupported(where, "a '" + type + "' pre-tokenizer");
    Metaspace m;
    m.replacement = metaspace->value("replacement", kMetaspace);
    m.split = metaspace->value("split", true);
    if (metaspace->contains("prepend_scheme")) {
      const std::string scheme = (*metaspace)["prepend_scheme"].get<std::string>();
      if (scheme == "always")
        m.prepend = Metaspace::Prepend::kAlways;
      else if (scheme == "first")
        m.prepend = Metaspace::Prepend::kFirst;
      else if (scheme == "never")
        m.prepend = Metaspace::Prepend::kNever;
      else
        fail(where + ".prepend_scheme", "is '" + scheme + "', expected always, first or never");
    } else if (metaspace->contains("add_prefix_space")) {  // the older spelling
      m.prepend = metaspace->value("add_prefix_space", true) ? Metaspace::Prepend::kAlways : Metaspace::Prepend::kNever;
    }
    return m;
  }

  std::vector<DecoderStep> decoder(const Json& node, const std::string& where) const {
    std::vector<DecoderStep> steps;
    if (node.is_null()) return steps;
    const std::string type = type_of(node, where);
    if (type == "Sequence") {
      for (std::size_t i = 0; i < node["decoders"].size(); ++i) {
        auto inner = decoder(node["decoders"][i], where + ".decoders[" + std::to_string(i) + "]");
        steps.insert(steps.end(), inner.begin(), inner.end());
      }
    } else if (type == "Replace") {
      steps.push_back(ReplaceStep{string_pattern(node, where), node.at("content").get<std::string>()});
    } else if (type == "ByteFallback") {
      steps.push_back(ByteFallbackStep{});
    } else if (type == "Fuse") {
      steps.push_back(FuseStep{});
    } else if (type == "Strip") {
      steps.push_back(StripStep{node.at("content").get<std::string>(), node.value("start", 0), node.value("stop", 0)});
    } else if (type == "Metaspace") {
      const std::string scheme =
          node.value("prepend_scheme", node.value("add_prefix_space", true) ? "always" : "never");
      steps.push_back(MetaspaceDecodeStep{node.value("replacement", kMetaspace), scheme != "never"});
    } else {
      unsupported(where, "a '" + type + "' decoder");
    }
    return steps;
  }

 private:
  const Json& json_;
  std::string source_;
};

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(const Json& json, const std::string& source, const Json& tokenizer_config) : source_(source) {
    const TokenizerJsonParser parse(json, source);
    if (!json.is_object() || !json.contains("model")) parse.fail("the top level", "has no \"model\"");
    const Json& model = json["model"];
    model_type_ = model.value("type", std::string());
    if (model_type_.empty()) model_type_ = model.contains("merges") ? "BPE" : "Unigram";
    if (model_type_ == "Unigram") {
      std::vector<std::pair<std::string, double>> pieces;
      for (const auto& item : model.at("vocab")) {
        if (!item.is_array() || item.size() != 2 || !item[0].is_string() || !item[1].is_number()) {
          parse.fail("model.vocab", "holds an entry that is not [piece, score]: " + item.dump());
        }
        pieces.emplace_back(item[0].get<std::string>(), item[1].get<double>());
      }
      std::optional<std::int32_t> unk_id;
      if (model.contains("unk_id") && model["unk_id"].is_number_integer()) unk_id = model["unk_id"].get<std::int32_t>();
      unigram_ = std::make_unique<UnigramModel>(std::move(pieces), unk_id, model.value("byte_fallback", false));
    } else if (model_type_ == "BPE") {
      if (!model.value("continuing_subword_prefix", Json()).is_null() ||
          !model.value("end_of_word_suffix", Json()).is_null()) {
        parse.unsupported("model", "BPE with a continuing_subword_prefix or end_of_word_suffix");
      }
      if (!model.value("dropout", Json()).is_null()) parse.unsupported("model.dropout", "BPE dropout");
      Vocabulary vocabulary;
      for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
        vocabulary.add(it.key(), it.value().get<std::int32_t>());
      }
      std::vector<std::pair<std::string, std::string>> merges;
      for (const auto& merge : model.at("merges")) {
        if (merge.is_array() && merge.size() == 2) {
          merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
        } else if (merge.is_string()) {  // the older "left right" spelling
          const std::string text = merge.get<std::string>();
          const auto space = text.find(' ');
          if (space == std::string::npos) parse.fail("model.merges", "holds '" + text + "', not 'left right'");
          merges.emplace_back(text.substr(0, space), text.substr(space + 1));
        } else {
          parse.fail("model.merges", "holds " + merge.dump());
        }
      }
      std::optional<std::int32_t> unk_id;
      if (model.contains("unk_token") && model["unk_token"].is_string()) {
        unk_id = vocabulary.find(model["unk_token"].get<std::string>());
      }
      bpe_ = std::make_unique<BpeModel>(std::move(vocabulary), merges, unk_id, model.value("fuse_unk", false),
                                        model.value("byte_fallback", false), model.value("ignore_merges", false));
    } else {
      parse.unsupported("model", "a '" + model_type_ + "' model");
    }

    for (const auto& token : json.value("added_tokens", Json::array())) {
      if (token.value("single_word", false))
        parse.unsupported("added token '" + token.value("content", "") + "'", "single_word");
      added_.push_back({token.at("id").get<std::int32_t>(), token.at("content").get<std::string>(),
                        token.value("special", false), token.value("lstrip", false), token.value("rstrip", false)});
    }
    normalizer_ = parse.normalizer(json.value("normalizer", Json()), "normalizer");
    pre_tokenizer_ = parse.pre_tokenizer(json.value("pre_tokenizer", Json()), "pre_tokenizer");
    decoder_ = parse.decoder(json.value("decoder", Json()), "decoder");
    parse_post_processor(parse, json.value("post_processor", Json()));

    bos_id_ = special_id(tokenizer_config, "bos_token");
    eos_id_ = special_id(tokenizer_config, "eos_token");
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<std::int32_t> ids;
    if (add_special_tokens) ids = prefix_ids_;
    std::size_t position = 0;
    while (position < text.size()) {
      const auto match = next_added_token(text, position);
      const std::size_t segment_end = match ? match->begin : text.size();
      if (segment_end > position) encode_segment(text.substr(position, segment_end - position), position == 0, ids);
      if (!match) break;
      ids.push_back(match->token->id);
      position = match->end;
    }
    if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
    return ids;
  }

  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    for (const auto id : ids) {
      const AddedToken* added = added_token(id);
      if (added && added->special && skip_special_tokens) continue;
      if (added) {
        tokens.push_back(added->content);
      } else if (vocabulary().has_id(id)) {
        tokens.push_back(vocabulary().piece(id));
      } else {
        throw FormatError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                          std::to_string(vocab_size()));
      }
    }
    for (const auto& step : decoder_) apply_decoder_step(step, tokens);
    return join(tokens, "");
  }

  std::int64_t vocab_size() const override {
    std::int64_t size = vocabulary().size();
    for (const auto& token : added_) size = std::max<std::int64_t>(size, token.id + 1);
    return size;
  }
  std::string piece(std::int32_t id) const override {
    if (const AddedToken* added = added_token(id)) return added->content;
    return vocabulary().piece(id);
  }
  std::optional<std::int32_t> bos_id() const override { return bos_id_; }
  std::optional<std::int32_t> eos_id() const override { return eos_id_; }
  std::string description() const override {
    return std::filesystem::path(source_).filename().string() + " (" + model_type_ + ", " +
           std::to_string(vocab_size()) + " pieces)";
  }

 private:
  struct Match {
    std::size_t begin;
    std::size_t end;
    const AddedToken* token;
  };

  const Vocabulary& vocabulary() const { return unigram_ ? unigram_->vocabulary() : bpe_->vocabulary(); }

  const AddedToken* added_token(std::int32_t id) const {
    for (const auto& token : added_) {
      if (token.id == id) return &token;
    }
    return nullptr;
  }

  std::optional<std::int32_t> special_id(const Json& config, const std::string& key) const {
    if (!config.contains(key)) return std::nullopt;
    const Json& value = config[key];
    const std::string content = value.is_string()   ? value.get<std::string>()
                                : value.is_object() ? value.value("content", std::string())
                                                    : std::string();
    for (const auto& token : added_) {
      if (token.content == content) return token.id;
    }
    return vocabulary().find(content);
  }

  void parse_post_processor(const TokenizerJsonParser& parse, const Json& node) {
    if (node.is_null()) return;
    const std::string type = parse.type_of(node, "post_processor");
    if (type != "TemplateProcessing") parse.unsupported("post_processor", "a '" + type + "' post-processor");
    bool after_sequence = false;
    for (const auto& item : node.at("single")) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      const Json& special = node.at("special_tokens");
      if (!special.contains(name))
        parse.fail("post_processor", "names special token '" + name + "' it does not define");
      auto& target = after_sequence ? suffix_ids_ : prefix_ids_;
      for (const auto& id : special[name].at("ids")) target.push_back(id.get<std::int32_t>());
    }
  }

  // The leftmost (then longest) added token at or after `from`.
  std::optional<Match> next_added_token(std::string_view text, std::size_t from) const {
    std::optional<Match> best;
    for (const auto& token : added_) {
      if (token.content.empty()) continue;
      const auto found = text.find(token.content, from);
      if (found == std::string_view::npos) continue;
      if (!best || found < best->begin || (found == best->begin && token.content.size() > best->end - best->begin)) {
        best = Match{found, found + token.content.size(), &token};
      }
    }
    if (best) {
      if (best->token->lstrip) {
        while (best->begin > from && is_whitespace(text[best->begin - 1])) --best->begin;
      }
      if (best->token->rstrip) {
        while (best->end < text.size() && is_whitespace(text[best->end])) ++best->end;
      }
    }
    return best;
  }

  void encode_segment(std::string_view segment, bool at_start, std::vector<std::int32_t>& ids) const {
    std::string normalized(segment);
    for (const auto& step : normalizer_) {
      if (const auto* replace = std::get_if<ReplaceStep>(&step)) {
        normalized = replace_all(std::move(normalized), replace->pattern, replace->content);
      } else if (const auto* prepend = std::get_if<PrependStep>(&step)) {
        if (!normalized.empty()) normalized = prepend->prefix + normalized;
      }
    }
    std::vector<std::string> pieces;
    if (pre_tokenizer_) {
      const Metaspace& m = *pre_tokenizer_;
      normalized = replace_all(std::move(normalized), " ", m.replacement);
      const bool prepend =
          m.prepend == Metaspace::Prepend::kAlways || (m.prepend == Metaspace::Prepend::kFirst && at_start);
      if (prepend && !normalized.empty() && !starts_with(normalized, m.replacement))
        normalized = m.replacement + normalized;
      if (m.split) {
        // Split before each replacement character (it starts the next piece).
        std::size_t start = 0;
        while (start < normalized.size()) {
          std::size_t next = normalized.find(
              m.replacement,
              start +
                  (starts_with(std::string_view(normalized).substr(start), m.replacement) ? m.replacement.size() : 0));
          if (next == std::string::npos) next = normalized.size();
          pieces.push_back(normalized.substr(start, next - start));
          start = next;
        }
      } else {
        pieces.push_back(std::move(normalized));
      }
    } else {
      pieces.push_back(std::move(normalized));
    }
    for (const auto& piece : pieces) {
      if (unigram_)
        unigram_->tokenize(piece, ids);
      else
        bpe_->tokenize(piece, ids);
    }
  }

  static void apply_decoder_step(const DecoderStep& step, std::vector<std::string>& tokens) {
    if (const auto* replace = std::get_if<ReplaceStep>(&step)) {
      for (auto& token : tokens) token = replace_all(std::move(token), replace->pattern, replace->content);
    } else if (std::holds_alternative<ByteFallbackStep>(step)) {
      std::vector<std::string> out;
      std::string bytes;
      std::size_t byte_count = 0;
      auto flush = [&] {
        if (byte_count == 0) return;
        if (is_valid_utf8(bytes)) {
          out.push_back(bytes);
        } else {
          for (std::size_t i = 0; i < byte_count; ++i) out.push_back("\xEF\xBF\xBD");  // U+FFFD per byte
        }
        bytes.clear();
        byte_count = 0;
      };
      for (auto& token : tokens) {
        unsigned value = 0;
        if (token.size() == 6 && starts_with(token, "<0x") && token[5] == '>' &&
            std::sscanf(token.c_str() + 3, "%2X", &value) == 1 && std::isxdigit(static_cast<unsigned char>(token[3])) &&
            std::isxdigit(static_cast<unsigned char>(token[4]))) {
          bytes.push_back(static_cast<char>(value));
          ++byte_count;
        } else {
          flush();
          out.push_back(std::move(token));
        }
      }
      flush();
      tokens = std::move(out);
    } else if (std::holds_alternative<FuseStep>(step)) {
      tokens = {join(tokens, "")};
    } else if (const auto* strip = std::get_if<StripStep>(&step)) {
      for (auto& token : tokens) {
        for (int i = 0; i < strip->start && starts_with(token, strip->content); ++i)
          token.erase(0, strip->content.size());
        for (int i = 0; i < strip->stop && ends_with(token, strip->content); ++i)
          token.resize(token.size() - strip->content.size());
      }
    } else if (const auto* metaspace = std::get_if<MetaspaceDecodeStep>(&step)) {
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_all(std::move(tokens[i]), metaspace->replacement, " ");
        if (i == 0 && metaspace->strip_first_space && starts_with(tokens[i], " ")) tokens[i].erase(0, 1);
      }
    }
  }

  std::string source_;
  std::string model_type_;
  std::unique_ptr<UnigramModel> unigram_;
  std::unique_ptr<BpeModel> bpe_;
  std::vector<AddedToken> added_;
  std::vector<NormalizerStep> normalizer_;
  std::optional<Metaspace> pre_tokenizer_;
  std::vector<DecoderStep> decoder_;
  std::vector<std::int32_t> prefix_ids_;
  std::vector<std::int32_t> suffix_ids_;
  std::optional<std::int32_t> bos_id_;
  std::optional<std::int32_t> eos_id_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json) {
  Json json;
  Json config = Json::object();
  try {
    json = Json::parse(read_text_file(tokenizer_json));
    const auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(config_path)) config = Json::parse(read_text_file(config_path));
  } catch (const Json::parse_error& e) {
    throw FormatError("'" + tokenizer_json.string() +
                      "' (or its tokenizer_config.json) is not valid JSON: " + e.what());
  }
  try {
    return std::make_unique<HfTokenizer>(json, tokenizer_json.string(), config);
  } catch (const Json::exception& e) {
    throw FormatError("'" + tokenizer_json.string() + "' has an unexpected structure: " + e.what(),
                      "is it a tokenizer.json written by Hugging Face tokenizers?");
  }
}

}  // namespace svmoe
