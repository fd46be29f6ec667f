// A Hugging Face tokenizer.json, run as `tokenizers` 0.23 runs it (Tokenizer::encode):
//   1. added tokens with normalized=false are split out of the raw text (leftmost-longest),
//   2. each other piece is normalized, then added tokens with normalized=true are split out,
//   3. the pre-tokenizer cuts the pieces further,
//   4. the model (Unigram or BPE) turns each piece into ids,
//   5. the post-processor adds the special tokens (BOS/EOS) when they are asked for.
// Decoding maps ids to pieces (dropping special tokens if asked), runs the decoder and joins.
// The components are in hf_normalizers.cpp, hf_pre_tokenizers.cpp and hf_decoders.cpp.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bitset>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "svmoe/text/hf_components.h"
#include "svmoe/text/subword_models.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/text/unicode.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

using Json = nlohmann::json;

struct AddedToken {
  std::int32_t id;
  std::string content;
  bool special;
  bool single_word;
  bool lstrip;
  bool rstrip;
  bool normalized;
  // What the token decodes as (tokenizers' simple_id_to_token): its normalized content when it
  // is matched in normalized text, so that the decoder inverts the normalizer on it too.
  std::string piece;
};

// Finds added tokens in a text as HF's AddedVocabulary::find_matches: leftmost-longest
// non-overlapping matches, single_word / lstrip / rstrip applied to each.
class AddedTokenMatcher {
 public:
  void add(std::string pattern, const AddedToken* token) {
    if (pattern.empty()) return;
    first_bytes_.set(static_cast<unsigned char>(pattern[0]));
    max_length_ = std::max(max_length_, pattern.size());
    patterns_.emplace(std::move(pattern), token);
  }
  bool empty() const { return patterns_.empty(); }

  // Splits each piece that is not an added token yet.
  void split(std::vector<TextSplit>& splits) const {
    if (empty()) return;
    std::vector<TextSplit> out;
    for (auto& piece : splits) {
      if (piece.added_token_id || piece.text.empty()) {
        if (!piece.text.empty()) out.push_back(std::move(piece));
        continue;
      }
      split_one(piece, out);
    }
    splits = std::move(out);
  }

 private:
  struct Match {
    std::size_t begin, end;
    const AddedToken* token;
  };

  std::vector<Match> leftmost_longest(std::string_view text) const {
    std::vector<Match> matches;
    for (std::size_t i = 0; i < text.size();) {
      const AddedToken* best = nullptr;
      std::size_t best_length = 0;
      if (first_bytes_.test(static_cast<unsigned char>(text[i]))) {
        const std::size_t longest = std::min(max_length_, text.size() - i);
        for (std::size_t length = longest; length > 0 && !best; --length) {
          const auto it = patterns_.find(std::string(text.substr(i, length)));
          if (it != patterns_.end()) {
            best = it->second;
            best_length = length;
          }
        }
      }
      if (best) {
        matches.push_back({i, i + best_length, best});
        i += best_length;
      } else {
        ++i;
      }
    }
    return matches;
  }

  void split_one(TextSplit& piece, std::vector<TextSplit>& out) const {
    const std::string& text = piece.text;
    std::size_t start_offset = 0;
    auto emit = [&](std::size_t begin, std::size_t end, std::optional<std::int32_t> id) {
      if (end <= begin) return;
      const std::size_t from_start =
          begin < piece.input_start_bytes ? std::min(piece.input_start_bytes, end) - begin : 0;
      out.push_back({text.substr(begin, end - begin), from_start, id});
    };
    for (const Match& match : leftmost_longest(text)) {
      std::size_t begin = match.begin, end = match.end;
      const AddedToken& token = *match.token;
      if (token.single_word) {
        const bool space_before = begin == 0 || !ends_with_word_character(std::string_view(text).substr(0, begin));
        const bool space_after = end == text.size() || !starts_with_word_character(std::string_view(text).substr(end));
        if (!space_before || !space_after) continue;
      }
      if (token.lstrip) begin = std::max(whitespace_run_start(std::string_view(text).substr(0, begin)), start_offset);
      if (token.rstrip) end += whitespace_run_length(std::string_view(text).substr(end));
      if (start_offset < begin) emit(start_offset, begin, std::nullopt);
      emit(begin, end, token.id);
      start_offset = end;
    }
    if (start_offset != text.size()) emit(start_offset, text.size(), std::nullopt);
  }

  static bool starts_with_word_character(std::string_view text) {
    return !text.empty() && unicode::is_word_character(unicode::decode_at(text, 0).code_point);
  }
  static bool ends_with_word_character(std::string_view text) {
    if (text.empty()) return false;
    std::size_t start = text.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    return unicode::is_word_character(unicode::decode_at(text, start).code_point);
  }
  // Where the whitespace at the end of `text` begins (text.size() if there is none).
  static std::size_t whitespace_run_start(std::string_view text) {
    std::size_t end = text.size();
    while (end > 0) {
      std::size_t start = end - 1;
      while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      if (!unicode::is_whitespace(unicode::decode_at(text, start).code_point)) break;
      end = start;
    }
    return end;
  }
  static std::size_t whitespace_run_length(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
      const auto c = unicode::decode_at(text, i);
      if (!unicode::is_whitespace(c.code_point)) break;
      i += c.length;
    }
    return i;
  }

  std::map<std::string, const AddedToken*, std::less<>> patterns_;
  std::bitset<256> first_bytes_;
  std::size_t max_length_ = 0;
};

// "Sequence[Replace, Replace]": a component's type tree, for descriptions.
std::string outline(const Json& node) {
  if (node.is_null()) return "none";
  if (!node.is_object() || !node.contains("type")) return "?";
  std::string text = node["type"].is_string() ? node["type"].get<std::string>() : "?";
  for (const char* key : {"normalizers", "pretokenizers", "decoders", "processors"}) {
    if (!node.contains(key) || !node[key].is_array()) continue;
    std::vector<std::string> inner;
    for (const auto& item : node[key]) inner.push_back(outline(item));
    text += "[" + join(inner, ", ") + "]";
  }
  return text;
}

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(const Json& json, const std::string& source, const Json& tokenizer_config) : source_(source) {
    const JsonLocation top{source, ""};
    if (!json.is_object() || !json.contains("model")) top.fail("has no \"model\"");
    parse_model(json["model"], top.at("model"));
    normalizer_ = parse_normalizer(json.value("normalizer", Json()), top.at("normalizer"));
    pre_tokenizer_ = parse_pre_tokenizer(json.value("pre_tokenizer", Json()), top.at("pre_tokenizer"));
    decoder_ = parse_decoder(json.value("decoder", Json()), top.at("decoder"));
    parse_added_tokens(json.value("added_tokens", Json::array()), top.at("added_tokens"));
    parse_post_processor(json.value("post_processor", Json()), top.at("post_processor"));
    apply_tokenizer_config(tokenizer_config);
    components_ = "normalizer " + outline(json.value("normalizer", Json())) + "; pre-tokenizer " +
                  outline(json.value("pre_tokenizer", Json())) + "; decoder " + outline(json.value("decoder", Json())) +
                  "; post-processor " + outline(json.value("post_processor", Json()));
  }

  std::vector<std::int32_t> encode(std::string_view raw_text, bool add_special_tokens) const override {
    // tokenizers takes Rust strings, which are valid UTF-8; corpora may not be.
    const std::string text = is_valid_utf8(raw_text) ? std::string(raw_text) : unicode::from_utf8_lossy(raw_text);
    std::vector<TextSplit> splits;
    if (!text.empty())
      splits.push_back({text, unicode::char_length(static_cast<unsigned char>(text[0])), std::nullopt});
    raw_matcher_.split(splits);
    if (normalizer_) {
      for (auto& piece : splits) {
        if (!piece.added_token_id) normalize_split(*normalizer_, piece);
      }
      splits.erase(std::remove_if(splits.begin(), splits.end(), [](const TextSplit& s) { return s.text.empty(); }),
                   splits.end());
    }
    normalized_matcher_.split(splits);
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(splits);

    std::vector<std::int32_t> ids;
    if (add_special_tokens) ids = prefix_ids_;
    for (const auto& piece : splits) {
      if (piece.added_token_id)
        ids.push_back(*piece.added_token_id);
      else if (unigram_)
        unigram_->tokenize(piece.text, ids);
      else
        bpe_->tokenize(piece.text, ids);
    }
    if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
    return ids;
  }

  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const auto id : ids) {
      if (!added_token(id) && !vocabulary().has_id(id)) {
        throw FormatError("token id " + std::to_string(id) + " is outside the vocabulary of '" + source_ + "' (" +
                              std::to_string(vocab_size()) + " ids)",
                          "were these ids made with another tokenizer?");
      }
      std::string token = piece(id);
      // As tokenizers: a piece is skipped when it is the content of a special token.
      if (skip_special_tokens && special_contents_.count(token) > 0) continue;
      tokens.push_back(std::move(token));
    }
    if (!decoder_) return join(tokens, " ");
    return join(decoder_->decode_chain(std::move(tokens)), "");
  }

  std::int64_t vocab_size() const override {
    std::int64_t size = vocabulary().size();
    for (const auto& token : added_) size = std::max<std::int64_t>(size, token.id + 1);
    return size;
  }
  std::string piece(std::int32_t id) const override {
    if (const AddedToken* added = added_token(id)) return added->piece;
    return vocabulary().piece(id);
  }
  std::optional<std::int32_t> bos_id() const override { return bos_id_; }
  std::optional<std::int32_t> eos_id() const override { return eos_id_; }
  std::string description() const override {
    return std::filesystem::path(source_).filename().string() + " (" + model_type_ + ", " +
           std::to_string(vocab_size()) + " pieces)";
  }
  std::string details() const override {
    std::size_t special = 0;
    for (const auto& token : added_) special += token.special ? 1 : 0;
    std::string text = model_type_ + " model, " + std::to_string(vocabulary().size()) + " pieces" +
                       (byte_fallback_ ? ", byte fallback" : "") + "; " + std::to_string(added_.size()) +
                       " added tokens (" + std::to_string(special) + " special); " + components_;
    text += "; adds " + std::to_string(prefix_ids_.size()) + " id(s) before and " + std::to_string(suffix_ids_.size()) +
            " after a text";
    return text;
  }

 private:
  const Vocabulary& vocabulary() const { return unigram_ ? unigram_->vocabulary() : bpe_->vocabulary(); }

  const AddedToken* added_token(std::int32_t id) const {
    const auto it = added_by_id_.find(id);
    return it == added_by_id_.end() ? nullptr : &added_[it->second];
  }

  void parse_model(const Json& model, const JsonLocation& where) {
    model_type_ = model.value("type", std::string());
    if (model_type_.empty()) model_type_ = model.contains("merges") ? "BPE" : "Unigram";
    byte_fallback_ = model.value("byte_fallback", false);
    if (model_type_ == "Unigram") {
      std::vector<std::pair<std::string, double>> pieces;
      for (const auto& item : model.at("vocab")) {
        if (!item.is_array() || item.size() != 2 || !item[0].is_string() || !item[1].is_number()) {
          where.at("vocab").fail("holds an entry that is not [piece, score]: " + item.dump());
        }
        pieces.emplace_back(item[0].get<std::string>(), item[1].get<double>());
      }
      std::optional<std::int32_t> unk_id;
      if (model.contains("unk_id") && model["unk_id"].is_number_integer()) unk_id = model["unk_id"].get<std::int32_t>();
      unigram_ = std::make_unique<UnigramModel>(std::move(pieces), unk_id, byte_fallback_);
    } else if (model_type_ == "BPE") {
      if (!model.value("continuing_subword_prefix", Json()).is_null() ||
          !model.value("end_of_word_suffix", Json()).is_null()) {
        where.unsupported("BPE with a continuing_subword_prefix or end_of_word_suffix");
      }
      if (!model.value("dropout", Json()).is_null()) where.at("dropout").unsupported("BPE dropout");
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
          if (space == std::string::npos) where.at("merges").fail("holds '" + text + "', not 'left right'");
          merges.emplace_back(text.substr(0, space), text.substr(space + 1));
        } else {
          where.at("merges").fail("holds " + merge.dump());
        }
      }
      std::optional<std::int32_t> unk_id;
      if (model.contains("unk_token") && model["unk_token"].is_string()) {
        unk_id = vocabulary.find(model["unk_token"].get<std::string>());
      }
      bpe_ = std::make_unique<BpeModel>(std::move(vocabulary), merges, unk_id, model.value("fuse_unk", false),
                                        byte_fallback_, model.value("ignore_merges", false));
    } else {
      where.unsupported("a '" + model_type_ + "' model");
    }
  }

  void parse_added_tokens(const Json& list, const JsonLocation& where) {
    if (!list.is_array()) where.fail("is not a list");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Json& token = list[i];
      if (!token.is_object() || !token.contains("id") || !token["id"].is_number_integer() ||
          !token.contains("content") || !token["content"].is_string()) {
        where.at(i).fail("is not an added token {\"id\": ..., \"content\": ...}");
      }
      const bool special = token.value("special", false);
      const std::string content = token["content"].get<std::string>();
      added_.push_back({token["id"].get<std::int32_t>(), content, special, token.value("single_word", false),
                        token.value("lstrip", false), token.value("rstrip", false), token.value("normalized", !special),
                        content});
    }
    for (std::size_t i = 0; i < added_.size(); ++i) added_by_id_[added_[i].id] = i;
    for (auto& token : added_) {
      if (token.special) special_contents_.insert(token.content);
      if (!token.normalized) {
        raw_matcher_.add(token.content, &token);
      } else {
        // Matched in normalized text, so the pattern is the normalized content.
        if (normalizer_) normalizer_->normalize(token.piece);
        normalized_matcher_.add(token.piece, &token);
      }
    }
  }

  std::int32_t id_of(const std::string& content) const {
    for (const auto& token : added_) {
      if (token.content == content) return token.id;
    }
    if (const auto id = vocabulary().find(content)) return *id;
    return -1;
  }

  // The ids the post-processor adds around a single text (TemplateProcessing's "single",
  // Roberta/Bert's cls ... sep); ByteLevel adds none.
  void parse_post_processor(const Json& node, const JsonLocation& where) {
    if (node.is_null()) return;
    const std::string type = where.type_of(node);
    if (type == "Sequence") {
      const JsonLocation list = where.at("processors");
      if (!node.contains("processors") || !node["processors"].is_array()) list.fail("is missing or not a list");
      for (std::size_t i = 0; i < node["processors"].size(); ++i)
        parse_post_processor(node["processors"][i], list.at(i));
    } else if (type == "ByteLevel") {
      // offsets only
    } else if (type == "TemplateProcessing") {
      bool after_sequence = false;
      const Json& special = node.value("special_tokens", Json::object());
      for (const auto& item : node.at("single")) {
        if (item.contains("Sequence")) {
          after_sequence = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        if (!special.contains(name)) where.at("special_tokens").fail("does not define '" + name + "'");
        auto& target = after_sequence ? suffix_ids_ : prefix_ids_;
        for (const auto& id : special[name].at("ids")) target.push_back(id.get<std::int32_t>());
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      prefix_ids_.push_back(node.at("cls").at(1).get<std::int32_t>());
      suffix_ids_.push_back(node.at("sep").at(1).get<std::int32_t>());
    } else {
      where.unsupported("a '" + type + "' post-processor");
    }
  }

  // tokenizer_config.json: the BOS/EOS tokens, and add_bos_token / add_eos_token, which make
  // transformers rebuild the post-processor as [BOS] $A [EOS] (LlamaTokenizerFast).
  void apply_tokenizer_config(const Json& config) {
    auto content_of = [&](const char* key) -> std::string {
      if (!config.contains(key)) return {};
      const Json& value = config[key];
      if (value.is_string()) return value.get<std::string>();
      if (value.is_object()) return value.value("content", std::string());
      return {};
    };
    auto id_for = [&](const char* key) -> std::optional<std::int32_t> {
      const std::string content = content_of(key);
      if (content.empty()) return std::nullopt;
      const std::int32_t id = id_of(content);
      if (id < 0) return std::nullopt;
      return id;
    };
    bos_id_ = id_for("bos_token");
    eos_id_ = id_for("eos_token");
    const bool sets_bos = config.contains("add_bos_token") && config["add_bos_token"].is_boolean();
    const bool sets_eos = config.contains("add_eos_token") && config["add_eos_token"].is_boolean();
    if (sets_bos || sets_eos) {
      prefix_ids_.clear();
      suffix_ids_.clear();
      if (sets_bos && config["add_bos_token"].get<bool>() && bos_id_) prefix_ids_.push_back(*bos_id_);
      if (sets_eos && config["add_eos_token"].get<bool>() && eos_id_) suffix_ids_.push_back(*eos_id_);
    }
  }

  std::string source_;
  std::string model_type_;
  std::string components_;
  bool byte_fallback_ = false;
  std::unique_ptr<UnigramModel> unigram_;
  std::unique_ptr<BpeModel> bpe_;
  std::vector<AddedToken> added_;
  std::unordered_map<std::int32_t, std::size_t> added_by_id_;
  std::unordered_set<std::string> special_contents_;
  AddedTokenMatcher raw_matcher_;
  AddedTokenMatcher normalized_matcher_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
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
    const auto config_path = tokenizer_json.parent_path() / kTokenizerConfigFile;
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
