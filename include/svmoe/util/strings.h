// Small string helpers shared by error messages and reports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace svmoe {

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is close enough to be a plausible typo.
std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& parts, std::string_view separator);

// Text safe inside HTML elements and attribute values (&, <, >, " escaped).
std::string html_escape(std::string_view text);

// 1536 -> "1.5 KiB"
std::string format_bytes(std::uint64_t bytes);

// 1234567 -> "1,234,567"
std::string format_count(std::uint64_t count);

bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);

// The current time in ISO 8601 UTC, e.g. "2026-12-06T03:50:23Z" (step markers, lock files).
std::string utc_timestamp_now();

// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates).
bool is_valid_utf8(std::string_view s);

}  // namespace svmoe
