// The two subword models SentencePiece-style tokenizer.json files use, as Hugging Face
// `tokenizers` runs them: Unigram (Viterbi over piece log-probabilities) and BPE (ranked
// merges), both with byte fallback (unknown characters become <0xXX> byte pieces).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace svmoe {

// Pieces by id and the reverse map, shared by both models.
class Vocabulary {
 public:
  void add(std::string piece, std::int32_t id);
  std::optional<std::int32_t> find(std::string_view piece) const;
  const std::string& piece(std::int32_t id) const;
  std::int32_t size() const { return static_cast<std::int32_t>(pieces_.size()); }
  bool has_id(std::int32_t id) const { return id >= 0 && id < size() && !pieces_[id].empty(); }
  // The <0xXX> pieces for each byte of `text`, or nullopt if one is missing.
  std::optional<std::vector<std::int32_t>> byte_pieces(std::string_view text) const;

 private:
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::vector<std::int32_t> byte_ids_ = std::vector<std::int32_t>(256, -1);  // <0xXX> piece of each byte
};

// The pieces as a byte trie, for the common-prefix search of Unigram's Viterbi: walking from a
// position visits every piece that starts there, shortest first, in O(piece length).
class PieceTrie {
 public:
  void insert(std::string_view piece, std::int32_t id);
  // Calls visit(length, id) for each piece that is a prefix of `text`.
  template <typename Visit>
  void for_each_prefix(std::string_view text, Visit&& visit) const {
    std::int32_t node = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      node = child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) return;
      if (nodes_[node].id >= 0) visit(i + 1, nodes_[node].id);
    }
  }

 private:
  struct Node {
    std::int32_t id = -1;                                          // the piece ending here, if any
    std::vector<std::pair<unsigned char, std::int32_t>> children;  // sorted by byte
  };
  std::int32_t child(std::int32_t node, unsigned char byte) const;
  std::vector<Node> nodes_ = std::vector<Node>(1);
};

class UnigramModel {
 public:
  UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<std::int32_t> unk_id,
               bool byte_fallback);
  void tokenize(std::string_view text, std::vector<std::int32_t>& ids) const;
  const Vocabulary& vocabulary() const { return vocabulary_; }

 private:
  // The best segmentation of `text` as substrings (unknown runs fused into one).
  std::vector<std::string_view> segment(std::string_view text) const;

  Vocabulary vocabulary_;
  PieceTrie trie_;
  std::vector<double> scores_;
  std::optional<std::int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_;
};

class BpeModel {
 public:
  BpeModel(Vocabulary vocabulary, const std::vector<std::pair<std::string, std::string>>& merges,
           std::optional<std::int32_t> unk_id, bool fuse_unk, bool byte_fallback, bool ignore_merges);
  void tokenize(std::string_view text, std::vector<std::int32_t>& ids) const;
  const Vocabulary& vocabulary() const { return vocabulary_; }

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t new_id;
  };
  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }

  Vocabulary vocabulary_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::optional<std::int32_t> unk_id_;
  bool fuse_unk_;
  bool byte_fallback_;
  bool ignore_merges_;
};

}  // namespace svmoe
