// Python's str semantics over UTF-8 text: templates index, slice, measure and strip strings by code point,
// and str.strip() removes Unicode whitespace, not only ASCII. Invalid UTF-8 bytes count as one code point
// each, so every input has a meaning and nothing reads past the end.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::jinja::text {

// Decodes the code point starting at s[i], advancing i (by one byte for an invalid sequence).
uint32_t next_cp(std::string_view s, size_t& i);
void append_cp(std::string& out, uint32_t cp);
std::vector<uint32_t> code_points(std::string_view s);
// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> cp_offsets(std::string_view s);
size_t length(std::string_view s);

// str.isspace() for one code point (Python's definition: Unicode whitespace and the separators \x1c-\x1f).
bool is_space(uint32_t cp);
// strip/lstrip/rstrip; `chars` = nullptr strips whitespace, else any of the code points in *chars.
std::string strip(std::string_view s, const std::string* chars, bool left, bool right);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()

// str.split(sep, maxsplit); sep == nullptr splits on runs of whitespace. Throws Fault for an empty sep.
std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::string* sep, int64_t maxsplit);
// str.splitlines() (the line boundaries Python recognises, without keepends).
std::vector<std::string> splitlines(std::string_view s);
// markupsafe's escape(): & < > ' " as HTML entities.
std::string html_escape(std::string_view s);
std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);

}  // namespace tessera::jinja::text
