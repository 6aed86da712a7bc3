#include "models/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "core/error.h"

namespace tessera::unicode {

int utf8_seq_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

size_t valid_utf8_at(std::string_view s, size_t i) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    if (i >= n) return 0;
    uint8_t c = p[i];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; ++k) {
        if ((p[i + k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t len = valid_utf8_at(s, i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            i += 1;
        } else {
            out.append(s.data() + i, len);
            i += len;
        }
    }
    return out;
}

namespace {

// GPT-2's table: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes
// are given the code points 256, 257, ... in increasing byte order.
struct ByteTable {
    std::array<std::string, 256> to_text;
    std::array<uint32_t, 256> to_cp{};
    ByteTable() {
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_cp[b] = self ? uint32_t(b) : next++;
            append_utf8(to_text[b], to_cp[b]);
        }
    }
};

const ByteTable& byte_table() {
    static const ByteTable t;
    return t;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_table().to_text[b]; }

int unicode_to_byte(uint32_t cp) {
    // Self-mapped bytes first, then the shifted range 256..323.
    const auto& t = byte_table();
    if (cp < 256) return t.to_cp[cp] == cp ? int(cp) : -1;
    if (cp >= 256 + 68) return -1;
    for (int b = 0; b < 256; ++b)
        if (t.to_cp[b] == cp) return b;
    return -1;
}

std::string bytes_to_unicode_text(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) out += byte_to_unicode(c);
    return out;
}

// ---------------------------------------------------------------- regex splitting

struct RegexSplitter::Compiled {
    pcre2_code* code = nullptr;
    ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::vector<std::string>& patterns) {
    for (const auto& pat : patterns) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        // UTF: code points, not bytes. UCP: \s and friends use Unicode properties (so U+3000 is a space).
        // DOLLAR_ENDONLY: `$` means the end of the piece only, not "before a final newline".
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw Error(format("pre-tokenizer regex '%s': %s at offset %zu", pat.c_str(),
                               reinterpret_cast<const char*>(msg), size_t(err_off)));
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
        auto c = std::make_unique<Compiled>();
        c->code = code;
        regexes_.push_back(std::move(c));
    }
}

RegexSplitter::~RegexSplitter() = default;

std::vector<std::string> RegexSplitter::split(const std::string& text) const {
    // Pieces are kept as (offset, length) into text until the end.
    std::vector<std::pair<size_t, size_t>> pieces;
    if (!text.empty()) pieces.push_back({0, text.size()});
    for (const auto& rx : regexes_) {
        std::vector<std::pair<size_t, size_t>> next;
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(rx->code, nullptr);
        if (!md) throw Error("pre-tokenizer: out of memory", Status::OutOfMemory);
        for (auto [start, len] : pieces) {
            auto subject = reinterpret_cast<PCRE2_SPTR>(text.data() + start);
            size_t pos = 0, emitted = 0;
            while (pos <= len) {
                // The piece is the whole subject, so `$` and look-aheads stop at its end.
                int rc = pcre2_match(rx->code, subject, len, pos, pos == 0 ? 0 : PCRE2_NO_UTF_CHECK, md, nullptr);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    pcre2_match_data_free(md);
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    throw Error(format("pre-tokenizer: regex match failed: %s", reinterpret_cast<const char*>(msg)));
                }
                PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                size_t m0 = ov[0], m1 = ov[1];
                if (m1 == m0) {  // empty match: nothing to split off, step one character
                    pos = m0 + 1;
                    while (pos < len && (uint8_t(text[start + pos]) & 0xC0) == 0x80) ++pos;
                    continue;
                }
                if (m0 > emitted) next.push_back({start + emitted, m0 - emitted});
                next.push_back({start + m0, m1 - m0});
                emitted = pos = m1;
            }
            if (emitted < len) next.push_back({start + emitted, len - emitted});
        }
        pcre2_match_data_free(md);
        pieces = std::move(next);
    }
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (auto [start, len] : pieces) out.emplace_back(text, start, len);
    return out;
}

}  // namespace tessera::unicode
