// UTF-8 helpers and the regex splitter used by the byte-level BPE pre-tokenizers.
// Regexes run through PCRE2 (UTF + Unicode properties), so \p{L}, \p{N}, \p{P} ... use PCRE2's tables.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::unicode {

// Length of the UTF-8 sequence announced by its lead byte (1 for continuation/invalid bytes, so
// callers always make progress).
int utf8_seq_len(uint8_t lead);
// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string& out, uint32_t cp);
// Length of the valid UTF-8 sequence starting at s[i], or 0 when s[i] does not start one
// (bad lead byte, missing/bad continuation, overlong form, surrogate, > U+10FFFF, truncated).
size_t valid_utf8_at(std::string_view s, size_t i);
// Copy of s with every byte that is not part of a valid sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

// GPT-2's reversible byte <-> printable-character mapping (each byte maps to one code point;
// printable Latin-1 bytes map to themselves, the rest to U+0100 + n in byte order).
const std::string& byte_to_unicode(uint8_t b);        // UTF-8 text of the mapped code point
int unicode_to_byte(uint32_t cp);                      // -1 when cp is not in the mapping
std::string bytes_to_unicode_text(std::string_view bytes);  // whole string, byte by byte

// A compiled list of regexes applied in turn. Each regex splits every current piece into its matches
// and the unmatched text between them (nothing is dropped); the next regex then splits those pieces.
// A regex sees one piece at a time: `$` and look-aheads stop at the piece's end.
class RegexSplitter {
public:
    explicit RegexSplitter(const std::vector<std::string>& patterns);  // throws tessera::Error naming a bad pattern
    ~RegexSplitter();
    RegexSplitter(const RegexSplitter&) = delete;
    RegexSplitter& operator=(const RegexSplitter&) = delete;

    // `text` must be valid UTF-8 (see sanitize_utf8). Returns the pieces in order; they concatenate to text.
    std::vector<std::string> split(const std::string& text) const;

private:
    struct Compiled;
    std::vector<std::unique_ptr<Compiled>> regexes_;
};

}  // namespace tessera::unicode
