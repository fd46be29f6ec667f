#include "svmoe/text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "svmoe/text/unicode.h"
#include "svmoe/util/error.h"

namespace svmoe {
namespace {

// Per-thread match state: PCRE2's match data and a JIT stack large enough for long runs of
// one character (the default 32 KiB overflows on patterns like \s+(?!\S) over long inputs).
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  std::string literal;  // non-empty: a plain substring search instead of PCRE2
  ~Compiled() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, const std::string& where)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &offset, context);
  pcre2_compile_context_free(context);
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw FormatError(where + ": the regex '" + pattern + "' does not compile at offset " + std::to_string(offset) +
                          ": " + reinterpret_cast<const char*>(message),
                      "is the file a tokenizer.json written by Hugging Face tokenizers?");
  }
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

Regex Regex::literal(const std::string& literal, const std::string& where) {
  if (literal.empty()) return Regex("", where);
  Regex regex("(?:)", where);
  regex.pattern_ = literal;
  regex.compiled_->literal = literal;
  return regex;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<PatternPiece> Regex::find_matches(std::string_view text) const {
  std::vector<PatternPiece> pieces;
  if (text.empty()) {
    pieces.push_back({0, 0, false});
    return pieces;
  }
  std::size_t previous = 0;
  auto add_match = [&](std::size_t begin, std::size_t end) {
    if (previous != begin) pieces.push_back({previous, begin, false});
    pieces.push_back({begin, end, true});
    previous = end;
  };
  if (!compiled_->literal.empty()) {
    const std::string& needle = compiled_->literal;
    for (std::size_t found = text.find(needle); found != std::string_view::npos;
         found = text.find(needle, found + needle.size())) {
      add_match(found, found + needle.size());
    }
  } else {
    MatchState& state = match_state();
    // The onig crate's FindMatches: search from the last end; an empty match advances by one
    // character and is dropped when it directly follows a non-empty match.
    std::size_t last_end = 0;
    bool skip_next_empty = false;
    while (last_end <= text.size()) {
      const int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), last_end,
                                 PCRE2_NO_UTF_CHECK, state.data, state.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        throw FormatError("the regex '" + pattern_ + "' failed on a text of " + std::to_string(text.size()) +
                          " bytes: " + reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
      const std::size_t begin = ovector[0], end = ovector[1];
      last_end = end;
      if (begin == end) {
        last_end += last_end < text.size() ? unicode::char_length(static_cast<unsigned char>(text[last_end])) : 1;
        if (skip_next_empty) {
          skip_next_empty = false;
          continue;
        }
      } else {
        skip_next_empty = true;
      }
      add_match(begin, end);
    }
  }
  if (previous != text.size()) pieces.push_back({previous, text.size(), false});
  return pieces;
}

std::string Regex::replace_all(std::string_view text, const std::string& content) const {
  std::string out;
  out.reserve(text.size());
  for (const auto& piece : find_matches(text)) {
    if (piece.is_match)
      out += content;
    else
      out.append(text.substr(piece.begin, piece.end - piece.begin));
  }
  return out;
}

}  // namespace svmoe
