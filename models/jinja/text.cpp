#include "models/jinja/text.h"

#include <clocale>
#include <cwctype>
#include <locale.h>

#include "models/jinja/value.h"
#include "models/unicode.h"

namespace tessera::jinja::text {

uint32_t next_cp(std::string_view s, size_t& i) {
    const auto b0 = uint8_t(s[i]);
    const int n = b0 < 0x80 ? 0 : (b0 >> 5) == 6 ? 1 : (b0 >> 4) == 14 ? 2 : (b0 >> 3) == 30 ? 3 : -1;
    if (n == 0) {
        ++i;
        return b0;
    }
    // A stray or truncated byte becomes a lone surrogate (Python's surrogateescape), written back unchanged.
    if (n < 0 || i + size_t(n) >= s.size()) {
        ++i;
        return 0xDC00 + b0;
    }
    uint32_t cp = b0 & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
        const auto b = uint8_t(s[i + size_t(k)]);
        if ((b & 0xC0) != 0x80) {
            ++i;
            return 0xDC00 + b0;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    i += size_t(n) + 1;
    return cp;
}

void append_cp(std::string& out, uint32_t cp) {
    if (cp >= 0xDC80 && cp <= 0xDCFF)
        out += char(cp - 0xDC00);  // an escaped invalid byte
    else
        unicode::append_utf8(out, cp);
}

std::vector<uint32_t> code_points(std::string_view s) {
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < s.size();) cps.push_back(next_cp(s, i));
    return cps;
}

std::vector<size_t> cp_offsets(std::string_view s) {
    std::vector<size_t> off;
    for (size_t i = 0; i < s.size();) {
        off.push_back(i);
        next_cp(s, i);
    }
    off.push_back(s.size());
    return off;
}

size_t length(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++n) next_cp(s, i);
    return n;
}

bool is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
    std::vector<uint32_t> set;
    if (chars) set = code_points(*chars);
    auto strippable = [&](uint32_t cp) {
        if (!chars) return is_space(cp);
        for (uint32_t c : set)
            if (c == cp) return true;
        return false;
    };
    const auto off = cp_offsets(s);
    size_t b = 0, e = off.size() - 1;  // code point indices [b, e)
    auto cp_at = [&](size_t k) {
        size_t i = off[k];
        return next_cp(s, i);
    };
    if (left)
        while (b < e && strippable(cp_at(b))) ++b;
    if (right)
        while (e > b && strippable(cp_at(e - 1))) --e;
    return std::string(s.substr(off[b], off[e] - off[b]));
}

namespace {

// Unicode case mapping from the C library's UTF-8 locale (a locale object, not the process locale); ASCII
// only when the system has none.
locale_t utf8_locale() {
    static locale_t loc = [] {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
        return l;
    }();
    return loc;
}

uint32_t to_upper(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    if (locale_t l = utf8_locale()) return uint32_t(towupper_l(wint_t(c), l));
    return c;
}
uint32_t to_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (locale_t l = utf8_locale()) return uint32_t(towlower_l(wint_t(c), l));
    return c;
}
bool is_cased(uint32_t c) { return to_upper(c) != c || to_lower(c) != c; }

template <class F> std::string map_cps(std::string_view s, F f) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) append_cp(out, f(next_cp(s, i)));
    return out;
}

}  // namespace

std::string upper(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const uint32_t c = next_cp(s, i);
        if (c == 0xDF) out += "SS";  // Python's full mapping; the C library maps only one to one
        else append_cp(out, to_upper(c));
    }
    return out;
}
std::string lower(std::string_view s) { return map_cps(s, to_lower); }

std::string title(std::string_view s) {
    bool prev_cased = false;
    return map_cps(s, [&](uint32_t c) {
        const uint32_t r = prev_cased ? to_lower(c) : to_upper(c);
        prev_cased = is_cased(c);
        return r;
    });
}

std::string capitalize(std::string_view s) {
    bool first = true;
    return map_cps(s, [&](uint32_t c) {
        const uint32_t r = first ? to_upper(c) : to_lower(c);
        first = false;
        return r;
    });
}

std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit) {
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty()) throw Fault{"empty separator"};
        size_t pos = 0;
        while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
            const size_t hit = s.find(*sep, pos);
            if (hit == std::string_view::npos) break;
            out.emplace_back(s.substr(pos, hit - pos));
            pos = hit + sep->size();
        }
        out.emplace_back(s.substr(pos));
        return out;
    }
    size_t i = 0;
    while (true) {
        // skip whitespace
        size_t j = i;
        while (j < s.size()) {
            size_t k = j;
            if (!is_space(next_cp(s, k))) break;
            j = k;
        }
        i = j;
        if (i >= s.size()) break;
        if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
            // the rest, with trailing whitespace removed, is the last piece
            out.push_back(strip(s.substr(i), nullptr, false, true));
            break;
        }
        size_t start = i;
        while (j < s.size()) {
            size_t k = j;
            if (is_space(next_cp(s, k))) break;
            j = k;
        }
        out.emplace_back(s.substr(start, j - start));
        i = j;
    }
    return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
    if (maxsplit < 0) return split(s, sep, maxsplit);
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty()) throw Fault{"empty separator"};
        size_t end = s.size();
        while (int64_t(out.size()) < maxsplit) {
            if (end < sep->size()) break;
            const size_t hit = s.rfind(*sep, end - sep->size());
            if (hit == std::string_view::npos) break;
            out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
            end = hit;
        }
        out.emplace_back(s.substr(0, end));
    } else {
        const auto off = cp_offsets(s);
        auto space_at = [&](size_t k) {
            size_t i = off[k];
            return is_space(next_cp(s, i));
        };
        size_t e = off.size() - 1;
        while (true) {
            while (e > 0 && space_at(e - 1)) --e;
            if (e == 0) break;
            if (int64_t(out.size()) >= maxsplit) {
                out.push_back(strip(s.substr(0, off[e]), nullptr, true, false));
                break;
            }
            size_t b = e;
            while (b > 0 && !space_at(b - 1)) --b;
            out.emplace_back(s.substr(off[b], off[e] - off[b]));
            e = b;
        }
    }
    return {out.rbegin(), out.rend()};
}

std::vector<std::string> splitlines(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (size_t i = 0; i < s.size();) {
        const size_t at = i;
        const uint32_t c = next_cp(s, i);
        const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                         c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
            cur.append(s.substr(at, i - at));
            continue;
        }
        if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
        out.push_back(std::move(cur));
        cur.clear();
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '\'': out += "&#39;"; break;
            case '"': out += "&#34;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
    std::string out;
    if (from.empty()) {
        // Python inserts `to` before every code point and at the end, `count` times at most.
        const auto off = cp_offsets(s);
        int64_t done = 0;
        for (size_t k = 0; k + 1 < off.size(); ++k) {
            if (count < 0 || done < count) {
                out += to;
                ++done;
            }
            out += s.substr(off[k], off[k + 1] - off[k]);
        }
        if (count < 0 || done < count) out += to;
        return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        const size_t hit = s.find(from, pos);
        if (hit == std::string_view::npos) break;
        out += s.substr(pos, hit - pos);
        out += to;
        pos = hit + from.size();
        ++done;
    }
    out += s.substr(pos);
    return out;
}

}  // namespace tessera::jinja::text
