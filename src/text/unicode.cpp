#include "svmoe/text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "svmoe/util/error.h"

// Each predicate here reproduces one Rust standard-library or regex-crate class, because the
// tokenizers we match (Hugging Face tokenizers, written in Rust) split and normalize with those;
// utf8proc supplies the Unicode tables (general categories, case mapping, decompositions).
namespace svmoe::unicode {

// The lead byte's high bits give the sequence length: 0xxxxxxx 1, 110xxxxx 2, 1110xxxx 3,
// 11110xxx 4 (RFC 3629).
std::size_t char_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

DecodedChar decode_at(std::string_view text, std::size_t position) {
  utf8proc_int32_t code_point = 0;
  const auto length = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + position),
                                       static_cast<utf8proc_ssize_t>(text.size() - position), &code_point);
  if (length <= 0) return {U'\uFFFD', 1};
  return {static_cast<char32_t>(code_point), static_cast<std::size_t>(length)};
}

void append_utf8(std::string& out, char32_t code_point) {
  utf8proc_uint8_t buffer[4];
  const auto length = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(length));
}

// The White_Space property (PropList.txt) listed by code point: it is the general categories
// Zs, Zl and Zp plus the controls U+0009..U+000D and U+0085, which no category test gives.
bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// ASCII first: most text is, and the digits are the only ASCII numerics.
bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return category == UTF8PROC_CATEGORY_ND || category == UTF8PROC_CATEGORY_NL || category == UTF8PROC_CATEGORY_NO;
}

// Rust regex's \w is UTS #18's word class: Alphabetic, marks, decimal digits, connector
// punctuation and Join_Control. Alphabetic is the letter categories plus Nl plus
// Other_Alphabetic; the marks of Other_Alphabetic are covered by Mn/Mc, the rest are listed.
bool is_word_character(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;  // Join_Control
  // Other_Alphabetic symbols outside the letter and mark categories (circled and squared letters).
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_combining_mark(char32_t c) {
  if (c < 0x300) return false;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return category == UTF8PROC_CATEGORY_MN || category == UTF8PROC_CATEGORY_MC || category == UTF8PROC_CATEGORY_ME;
}

// One code point at a time: utf8proc_tolower is the simple (one-to-one) mapping, which equals
// the full mapping everywhere except U+0130, handled by hand.
std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto [c, length] = decode_at(text, i);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (c == 0x130) {  // the one unconditional multi-character lowercase mapping (SpecialCasing.txt)
      out += "i\xCC\x87";
    } else {
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    i += length;
  }
  return out;
}

std::string normalize(std::string_view text, NormalizationForm form) {
  if (text.empty()) return {};
  // STABLE keeps unassigned code points as they are (Unicode's stability policy), as Rust's
  // unicode-normalization does; COMPAT picks the K forms.
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalizationForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalizationForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalizationForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* mapped = nullptr;
  const auto length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &mapped, static_cast<utf8proc_option_t>(options));
  // utf8proc_map allocates the result with malloc; the caller frees it.
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(mapped, &std::free);
  if (length < 0) {
    throw FormatError(std::string("Unicode normalization failed: ") + utf8proc_errmsg(length),
                      "the text is not valid UTF-8");
  }
  return std::string(reinterpret_cast<const char*>(mapped), static_cast<std::size_t>(length));
}

// A hand-written decoder rather than decode_at because the number of replacement characters
// matters: each maximal invalid subpart (the longest prefix of a valid sequence, or one byte)
// becomes exactly one U+FFFD, as in Rust and in the W3C/WHATWG "substitution of maximal
// subparts" practice; byte-level BPE decoders reach this with split multi-byte characters.
std::string from_utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t size = bytes.size();
  std::size_t i = 0;
  while (i < size) {
    const unsigned char lead = data[i];
    if (lead < 0x80) {
      out.push_back(static_cast<char>(lead));
      ++i;
      continue;
    }
    // The valid continuation range of the second byte depends on the lead (Unicode Table 3-7).
    std::size_t need = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      need = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      need = 2;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      need = 3;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    }
    std::size_t consumed = 1;
    bool valid = need > 0;
    for (std::size_t k = 0; valid && k < need; ++k) {
      if (i + consumed >= size) {
        valid = false;
        break;
      }
      const unsigned char next = data[i + consumed];
      const unsigned char lo = k == 0 ? low : 0x80, hi = k == 0 ? high : 0xBF;
      if (next < lo || next > hi) {
        valid = false;
        break;
      }
      ++consumed;
    }
    if (valid) {
      out.append(bytes.substr(i, consumed));
    } else {
      out += "\xEF\xBF\xBD";  // one U+FFFD for the maximal invalid subpart
    }
    i += consumed;
  }
  return out;
}

}  // namespace svmoe::unicode
