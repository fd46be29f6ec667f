// Unicode helpers with the semantics Hugging Face tokenizers gets from Rust's `char` and its
// crates: White_Space, numeric and alphanumeric classes, full lowercase mapping, the four
// normalization forms (utf8proc) and `String::from_utf8_lossy`. UTF-8 in, UTF-8 out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace svmoe::unicode {

// The code point at `text[position]` and its byte length; an invalid byte decodes as U+FFFD of
// length 1 (tokenizer input is validated first, so this only guards against crashes).
struct DecodedChar {
  char32_t code_point;
  std::size_t length;
};
DecodedChar decode_at(std::string_view text, std::size_t position);
void append_utf8(std::string& out, char32_t code_point);
// Byte length of the UTF-8 character starting with `lead` (1 for a stray continuation byte).
std::size_t char_length(unsigned char lead);

bool is_whitespace(char32_t c);      // Rust char::is_whitespace (the White_Space property)
bool is_numeric(char32_t c);         // Rust char::is_numeric (general categories Nd, Nl, No)
bool is_word_character(char32_t c);  // Rust regex's Unicode \w
bool is_combining_mark(char32_t c);  // general categories Mn, Mc, Me

// Rust's str-wide char::to_lowercase (full, context-free mapping: U+0130 -> "i\u0307").
std::string lowercase(std::string_view text);

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };
std::string normalize(std::string_view text, NormalizationForm form);

// Invalid sequences become U+FFFD, one per maximal invalid subpart, as Rust's from_utf8_lossy.
std::string from_utf8_lossy(std::string_view bytes);

}  // namespace svmoe::unicode
