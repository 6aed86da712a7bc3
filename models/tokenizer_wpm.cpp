// WordPiece tokenization ("bert" vocabularies), giving the ids Hugging Face's BERT tokenizer gives for an
// uncased model (llama.cpp's WPM vocabularies assume one: it always lowercases and strips accents):
//  1. normalize each character: control characters (categories Cc, Cf, Co, other than \t \n \r), NUL and
//     U+FFFD are dropped (unassigned code points are kept, as Hugging Face keeps them); whitespace (\t \n \r
//     or category Z) ends a word; CJK ideographs stand alone; everything else is decomposed (NFD), stripped
//     of nonspacing marks (Mn) and lowercased;
//  2. split: punctuation (ASCII punctuation and symbols, or category P) stands alone as one-character words;
//  3. each word is matched greedily, longest piece first. llama.cpp's conversion writes a word-initial piece
//     with a leading "▁" (U+2581) and a continuation piece ("##x" in BERT's vocabulary) as plain "x", so the
//     word is looked up as "▁word". A word with a position no piece matches, or of more than 100 characters
//     (BERT's max_input_chars_per_word), becomes the one unknown token. A "▁" in the text itself is an
//     ordinary character: inside a word it cannot start a piece, since every piece that starts with it is a
//     word-initial one.
// Known difference: Hugging Face's punctuation / mark / control tables are Unicode 8's, PCRE2's are 14's, so
// about 500 rare characters added or recategorized since (marks and punctuation of newer scripts, U+0890,
// U+166D, U+1734, ...) split or are stripped differently; every other code point was checked to agree.
// Unicode categories come from PCRE2; the decomposition and lowercase tables PCRE2 lacks are generated into
// tokenizer_wpm_tables.inc by tools/gen_wpm_tables.py.
#include <algorithm>
#include <cstdint>
#include <memory>

#include "core/error.h"
#include "models/tokenizer.h"
#include "models/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace tessera {

namespace {

struct WpmStrip1 {
    uint32_t cp, to;
};
struct WpmStripN {
    uint32_t cp;
    uint32_t to[3];
};
struct WpmLower {
    uint32_t first, last;
    uint32_t stride;
    int32_t delta;
};

#include "models/tokenizer_wpm_tables.inc"

constexpr size_t kMaxWordChars = 100;  // BERT's max_input_chars_per_word
constexpr std::string_view kWordStart = "\xE2\x96\x81";  // "▁"

enum class CharClass { Other, Space, Control, Punct, Mark };

// One anchored PCRE2 pattern whose capture group says the category of a single character.
class Categories {
public:
    Categories() {
        const char* pat = R"((\p{Z})|([\p{Cc}\p{Cf}\p{Co}])|(\p{P})|(\p{Mn}))";
        int err = 0;
        PCRE2_SIZE off = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED,
                              &err, &off, nullptr);
        if (code_) pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // best effort
    }
    ~Categories() { pcre2_code_free(code_); }
    const pcre2_code* code() const { return code_; }

private:
    pcre2_code* code_ = nullptr;
};

const Categories& categories() {
    static const Categories c;
    if (!c.code()) throw Error("WordPiece tokenizer: cannot compile the Unicode category pattern");
    return c;
}

// Match data for one tokenize call (pcre2_match writes into it, so it is not shared between threads).
struct MatchData {
    pcre2_match_data* md;
    explicit MatchData(const pcre2_code* code) : md(pcre2_match_data_create_from_pattern(code, nullptr)) {
        if (!md) throw Error("WordPiece tokenizer: out of memory", Status::OutOfMemory);
    }
    ~MatchData() { pcre2_match_data_free(md); }
    MatchData(const MatchData&) = delete;
    MatchData& operator=(const MatchData&) = delete;
};

bool is_ascii_punct(uint32_t cp) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
}

CharClass classify(uint32_t cp, pcre2_match_data* md) {
    if (cp < 0x80) {  // ASCII without the regex: most text
        if (cp == '\t' || cp == '\n' || cp == '\r' || cp == ' ') return CharClass::Space;
        if (cp < 0x20 || cp == 0x7F) return CharClass::Control;
        return is_ascii_punct(cp) ? CharClass::Punct : CharClass::Other;
    }
    std::string s;
    unicode::append_utf8(s, cp);
    const pcre2_code* code = categories().code();
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc <= 1) return CharClass::Other;  // no match (or no group set)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    constexpr CharClass kGroup[] = {CharClass::Space, CharClass::Control, CharClass::Punct, CharClass::Mark};
    for (int g = 1; g < rc; ++g)
        if (ov[2 * g] != PCRE2_UNSET) return kGroup[g - 1];
    return CharClass::Other;
}

// Hugging Face's is_chinese_char ranges (the CJK ideograph blocks; 0x2B920, not 0x2B820, as it writes it).
bool is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

uint32_t to_lower(uint32_t cp) {
    // The last range starting at or before cp.
    auto it = std::upper_bound(std::begin(kWpmLower), std::end(kWpmLower), cp,
                               [](uint32_t c, const WpmLower& r) { return c < r.first; });
    if (it == std::begin(kWpmLower)) return cp;
    const WpmLower& r = *(it - 1);
    if (cp > r.last || (cp - r.first) % r.stride != 0) return cp;
    return uint32_t(int64_t(cp) + r.delta);
}

// The code points the normalizer makes of cp: NFD, nonspacing marks dropped, lowercased. At most 3.
int normalize(uint32_t cp, pcre2_match_data* md, uint32_t out[3]) {
    int n = 0;
    if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable -> leading consonant, vowel, optional trailing consonant
        const uint32_t s = cp - 0xAC00;
        out[n++] = 0x1100 + s / 588;
        out[n++] = 0x1161 + (s % 588) / 28;
        if (s % 28) out[n++] = 0x11A7 + s % 28;
        return n;  // jamo have no case
    }
    auto one = std::lower_bound(std::begin(kWpmStrip1), std::end(kWpmStrip1), cp,
                                [](const WpmStrip1& e, uint32_t c) { return e.cp < c; });
    if (one != std::end(kWpmStrip1) && one->cp == cp) {
        if (one->to) out[n++] = to_lower(one->to);
        return n;
    }
    auto many = std::lower_bound(std::begin(kWpmStripN), std::end(kWpmStripN), cp,
                                 [](const WpmStripN& e, uint32_t c) { return e.cp < c; });
    if (many != std::end(kWpmStripN) && many->cp == cp) {
        for (uint32_t c : many->to)
            if (c) out[n++] = to_lower(c);
        return n;
    }
    if (cp >= 0x80 && classify(cp, md) == CharClass::Mark) return 0;
    out[n++] = to_lower(cp);
    return n;
}

uint32_t decode_at(std::string_view s, size_t i, size_t len) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data() + i);
    if (len == 1) return p[0];
    if (len == 2) return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    if (len == 3) return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

}  // namespace

void Tokenizer::wpm_word(const std::string& word, size_t n_chars, std::vector<TokenId>& out) const {
    if (n_chars == 0) return;
    if (n_chars > kMaxWordChars) {
        out.push_back(unk_);
        return;
    }
    // `word` holds "▁" + the word's text. The first piece must cover "▁" and at least one character.
    const size_t n = word.size(), start_size = out.size();
    size_t pos = 0;
    while (pos < n) {
        const size_t min_end = pos == 0 ? kWordStart.size() + 1 : pos + 1;
        TokenId found = -1;
        size_t end = std::min(n, pos + max_token_len_);
        if (pos > 0 && word.compare(pos, kWordStart.size(), kWordStart) == 0) end = 0;  // "▁" mid-word: no piece
        for (; end >= min_end; --end) {
            if (end < n && (uint8_t(word[end]) & 0xC0) == 0x80) continue;  // not a character boundary
            found = find_token(std::string_view(word).substr(pos, end - pos));
            if (found >= 0) break;
        }
        if (found < 0) {  // some position has no piece: the whole word is unknown
            out.resize(start_size);
            out.push_back(unk_);
            return;
        }
        out.push_back(found);
        pos = end;
    }
}

void Tokenizer::tokenize_wpm(std::string_view text, std::vector<TokenId>& out) const {
    MatchData md(categories().code());
    std::string word(kWordStart);
    size_t n_chars = 0;
    auto finish_word = [&] {
        wpm_word(word, n_chars, out);
        word.resize(kWordStart.size());
        n_chars = 0;
    };
    auto append = [&](uint32_t cp) {
        unicode::append_utf8(word, cp);
        ++n_chars;
    };
    for (size_t i = 0; i < text.size();) {
        const size_t len = unicode::valid_utf8_at(text, i);
        if (len == 0) {  // invalid UTF-8 reads as U+FFFD, which the normalizer drops
            ++i;
            continue;
        }
        const uint32_t cp = decode_at(text, i, len);
        i += len;
        if (cp == 0 || cp == 0xFFFD) continue;
        const CharClass cls = classify(cp, md.md);
        if (cls == CharClass::Control) continue;
        if (cls == CharClass::Space) {
            finish_word();
            continue;
        }
        uint32_t norm[3];
        const int n_norm = normalize(cp, md.md, norm);
        if (is_cjk(cp)) {  // an ideograph is a word of its own
            finish_word();
            for (int k = 0; k < n_norm; ++k) append(norm[k]);
            finish_word();
            continue;
        }
        for (int k = 0; k < n_norm; ++k) {
            const uint32_t c = norm[k];
            const bool punct = c < 0x80 ? is_ascii_punct(c) : classify(c, md.md) == CharClass::Punct;
            if (punct) {
                finish_word();
                append(c);
                finish_word();
            } else {
                append(c);
            }
        }
    }
    finish_word();
}

}  // namespace tessera
