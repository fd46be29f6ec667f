#include "svmoe/text/subword_models.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <queue>

#include "svmoe/text/unicode.h"
#include "svmoe/util/error.h"

// The two subword models of Hugging Face tokenizers that llm-jp and Llama-family checkpoints use:
// Unigram (SentencePiece's, a Viterbi search over scored pieces) and BPE (ranked merges). Each
// follows the Rust implementation's choices where the algorithms leave room (ties, unknown
// characters, byte fallback), since the ids must match `tokenizers`' byte for byte
// (tests/text, reference fixtures made by npm `tokenizers`).
namespace svmoe {

void Vocabulary::add(std::string piece, std::int32_t id) {
  if (id < 0) throw FormatError("negative token id " + std::to_string(id) + " for piece '" + piece + "'");
  if (id >= size()) pieces_.resize(static_cast<std::size_t>(id) + 1);
  const bool added = ids_.emplace(piece, id).second;  // the first id of a duplicated piece wins, as in `tokenizers`
  unsigned value = 0;
  char end = 0;
  // A byte piece is spelled exactly "<0xHH>" (upper-case hex), as `tokenizers` looks it up.
  if (added && piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%2X%c", &value, &end) == 2 && end == '>') {
    char canonical[8];
    std::snprintf(canonical, sizeof canonical, "<0x%02X>", value);
    if (piece == canonical) byte_ids_[value] = id;
  }
  pieces_[id] = std::move(piece);
}

std::optional<std::int32_t> Vocabulary::find(std::string_view piece) const {
  const auto it = ids_.find(std::string(piece));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& Vocabulary::piece(std::int32_t id) const {
  static const std::string empty;
  return has_id(id) ? pieces_[id] : empty;
}

// Byte fallback: every byte of `text` as its <0xHH> piece, or nothing when the vocabulary lacks
// one of them (then the caller falls back to the unknown token).
std::optional<std::vector<std::int32_t>> Vocabulary::byte_pieces(std::string_view text) const {
  std::vector<std::int32_t> ids;
  for (const char c : text) {
    const std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id < 0) return std::nullopt;
    ids.push_back(id);
  }
  return ids;
}

// A byte trie whose children are kept sorted by byte, so that lookups are binary searches and
// the trie stays small for vocabularies of 100k pieces (no 256-slot arrays per node).
void PieceTrie::insert(std::string_view piece, std::int32_t id) {
  std::int32_t node = 0;
  for (const char c : piece) {
    const auto byte = static_cast<unsigned char>(c);
    std::int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<std::int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& children = nodes_[node].children;
      children.insert(std::lower_bound(children.begin(), children.end(), std::make_pair(byte, std::int32_t{-1})),
                      {byte, next});
    }
    node = next;
  }
  if (nodes_[node].id < 0) nodes_[node].id = id;  // the first id of a duplicated piece wins
}

std::int32_t PieceTrie::child(std::int32_t node, unsigned char byte) const {
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, std::int32_t{-1}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

UnigramModel::UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<std::int32_t> unk_id,
                           bool byte_fallback)
    : unk_id_(unk_id), byte_fallback_(byte_fallback) {
  double min_score = std::numeric_limits<double>::infinity();
  for (std::size_t id = 0; id < pieces.size(); ++id) {
    min_score = std::min(min_score, pieces[id].second);
    scores_.push_back(pieces[id].second);
    trie_.insert(pieces[id].first, static_cast<std::int32_t>(id));
    vocabulary_.add(std::move(pieces[id].first), static_cast<std::int32_t>(id));
  }
  unk_score_ = min_score - 10.0;  // tokenizers' K_UNK_PENALTY
}

// The Viterbi search over character boundaries: every vocabulary piece starting at a boundary
// (found with the trie) extends the best path ending there by its log-probability. A character
// that starts no single-character piece gets an unknown piece scored unk_score_, so that a path
// always exists. A tie keeps the path found first (its last piece starts earliest).
std::vector<std::string_view> UnigramModel::segment(std::string_view text) const {
  // best[i]: the best path over text[0, i): its score, where its last piece starts, and its id.
  struct Node {
    double score = 0.0;
    std::int64_t start = -1;
    std::int32_t id = -1;
  };
  std::vector<Node> best(text.size() + 1);
  std::size_t start = 0;
  while (start < text.size()) {
    const double score_here = best[start].score;
    const std::size_t char_bytes =
        std::min(unicode::char_length(static_cast<unsigned char>(text[start])), text.size() - start);
    bool has_single_char_piece = false;
    trie_.for_each_prefix(text.substr(start), [&](std::size_t length, std::int32_t id) {
      Node& target = best[start + length];
      const double candidate = score_here + scores_[id];
      if (target.start < 0 || candidate > target.score) target = {candidate, static_cast<std::int64_t>(start), id};
      if (length == char_bytes) has_single_char_piece = true;
    });
    if (!has_single_char_piece) {
      Node& target = best[start + char_bytes];
      const double candidate = score_here + unk_score_;
      if (target.start < 0 || candidate > target.score) {
        target = {candidate, static_cast<std::int64_t>(start), unk_id_.value_or(-1)};
      }
    }
    start += char_bytes;
  }

  // Walk back from the end; consecutive unknown pieces fuse into one.
  std::vector<std::string_view> pieces;
  std::size_t end = text.size();
  std::size_t unknown_end = 0;
  bool in_unknown = false;
  while (end > 0) {
    const Node& node = best[end];
    const auto node_start = static_cast<std::size_t>(node.start);
    const bool unknown = unk_id_ && node.id == *unk_id_;
    if (unknown) {
      if (!in_unknown) unknown_end = end;
      in_unknown = true;
    } else {
      if (in_unknown) pieces.push_back(text.substr(end, unknown_end - end));
      in_unknown = false;
      pieces.push_back(text.substr(node_start, end - node_start));
    }
    end = node_start;
  }
  if (in_unknown) pieces.push_back(text.substr(0, unknown_end));
  std::reverse(pieces.begin(), pieces.end());
  return pieces;
}

// Pieces to ids: an unknown piece becomes its bytes' pieces with byte_fallback, else unk_id.
void UnigramModel::tokenize(std::string_view text, std::vector<std::int32_t>& ids) const {
  for (const auto piece : segment(text)) {
    if (const auto id = vocabulary_.find(piece)) {
      ids.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      if (const auto bytes = vocabulary_.byte_pieces(piece)) {
        ids.insert(ids.end(), bytes->begin(), bytes->end());
        continue;
      }
    }
    if (!unk_id_) throw FormatError("the Unigram tokenizer has no unk_id but met an unknown piece");
    ids.push_back(*unk_id_);
  }
}

BpeModel::BpeModel(Vocabulary vocabulary, const std::vector<std::pair<std::string, std::string>>& merges,
                   std::optional<std::int32_t> unk_id, bool fuse_unk, bool byte_fallback, bool ignore_merges)
    : vocabulary_(std::move(vocabulary)),
      unk_id_(unk_id),
      fuse_unk_(fuse_unk),
      byte_fallback_(byte_fallback),
      ignore_merges_(ignore_merges) {
  // The merges as (left id, right id) -> (rank, merged id): the rank is the merge's line in the
  // merges list, and a lower rank merges first.
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = vocabulary_.find(left);
    const auto right_id = vocabulary_.find(right);
    const auto merged_id = vocabulary_.find(left + right);
    if (!left_id || !right_id || !merged_id) {
      throw FormatError("BPE merge #" + std::to_string(rank) + " ('" + left + "', '" + right +
                        "') uses a piece missing from the vocabulary");
    }
    merges_.emplace(pair_key(*left_id, *right_id), Merge{static_cast<std::int32_t>(rank), *merged_id});
  }
}

// One pre-tokenized word: start from its characters (or their byte pieces, or unk), then apply
// merges lowest rank first with a priority queue, O(n log n) rather than rescanning the word
// after each merge. With ignore_merges a word that is itself in the vocabulary is one token.
void BpeModel::tokenize(std::string_view text, std::vector<std::int32_t>& ids) const {
  if (text.empty()) return;
  if (ignore_merges_) {
    if (const auto id = vocabulary_.find(text)) {
      ids.push_back(*id);
      return;
    }
  }
  // The word as a doubly linked list of symbols.
  struct Symbol {
    std::int32_t id;
    std::int64_t previous;
    std::int64_t next;
    bool removed;
  };
  std::vector<Symbol> symbols;
  auto append = [&](std::int32_t id) {
    const auto index = static_cast<std::int64_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, false});
  };
  bool last_was_unknown = false;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = std::min(unicode::char_length(static_cast<unsigned char>(text[i])), text.size() - i);
    const std::string_view character = text.substr(i, length);
    i += length;
    if (const auto id = vocabulary_.find(character)) {
      append(*id);
      last_was_unknown = false;
      continue;
    }
    if (byte_fallback_) {
      if (const auto bytes = vocabulary_.byte_pieces(character)) {
        for (const auto id : *bytes) append(id);
        last_was_unknown = false;
        continue;
      }
    }
    if (!unk_id_) continue;  // Hugging Face's BPE drops a character it cannot represent
    if (!(fuse_unk_ && last_was_unknown)) append(*unk_id_);
    last_was_unknown = true;
  }
  if (!symbols.empty()) symbols.back().next = -1;

  // Merge the lowest-ranked adjacent pair, leftmost first, until none is left.
  struct Candidate {
    std::int32_t rank;
    std::int64_t position;
    std::int32_t new_id;
    bool operator<(const Candidate& other) const {  // inverted: priority_queue pops the largest
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate> queue;
  auto push_pair = [&](std::int64_t left) {
    const std::int64_t right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (std::int64_t i = 0; i + 1 < static_cast<std::int64_t>(symbols.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    // An entry is stale when an earlier merge consumed its left symbol or changed its right
    // neighbour; it is recognised by looking the pair up again.
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.removed || left.next < 0) continue;
    const auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    Symbol& right = symbols[left.next];
    right.removed = true;
    left.id = top.new_id;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].previous = top.position;
    if (left.previous >= 0) push_pair(left.previous);
    push_pair(top.position);
  }
  for (const auto& symbol : symbols) {
    if (!symbol.removed) ids.push_back(symbol.id);
  }
}

}  // namespace svmoe
