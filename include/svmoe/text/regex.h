// A regular expression as Hugging Face tokenizers runs the patterns of tokenizer.json: the
// Oniguruma engine (Ruby syntax: `^`/`$` match at line boundaries, \s \d \w \p{..} are
// Unicode-aware), searched with the onig crate's find_iter (an empty match right after a
// match is skipped). svmoe compiles it with PCRE2 (UTF, UCP, MULTILINE, JIT).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace svmoe {

// A piece of a string and whether it is a match of the pattern or the text between matches
// (HF's `Pattern::find_matches`): the pieces cover the string in order; "" gives one non-match.
struct PatternPiece {
  std::size_t begin;
  std::size_t end;
  bool is_match;
};

class Regex {
 public:
  // `where` names the pattern in errors (e.g. "'tokenizer.json': pre_tokenizer.pattern").
  Regex(const std::string& pattern, const std::string& where);
  // A pattern that matches `literal` exactly (HF escapes a String pattern into a regex).
  static Regex literal(const std::string& literal, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  std::vector<PatternPiece> find_matches(std::string_view text) const;
  // `text` with every match replaced by `content` (HF's Replace normalizer and decoder).
  std::string replace_all(std::string_view text, const std::string& content) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace svmoe
