#include "models/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "models/jinja/jinja.h"
#include "models/jinja/text.h"

namespace tessera::jinja {

namespace {

// Line endings become \n and one trailing newline goes (Jinja2's keep_trailing_newline=False).
std::string normalize(const std::string& src) {
    std::string out;
    out.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
        if (src[i] == '\r') {
            out += '\n';
            if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
        } else {
            out += src[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

class Lexer {
 public:
    explicit Lexer(std::string src) : s_(std::move(src)) {}

    std::vector<Token> run() {
        while (pos_ < s_.size()) {
            const size_t tag = find_tag(pos_);
            std::string text = s_.substr(pos_, (tag == std::string::npos ? s_.size() : tag) - pos_);
            if (tag == std::string::npos) {
                emit_text(text, pos_);
                pos_ = s_.size();
                break;
            }
            const char kind = s_[tag + 1];  // '{', '%' or '#'
            const char sign = tag + 2 < s_.size() && (s_[tag + 2] == '-' || s_[tag + 2] == '+') ? s_[tag + 2] : 0;
            const size_t text_at = pos_;
            if (sign == '-') {
                text = text::strip(text, nullptr, false, true);
            } else if (sign != '+' && kind != '{') {
                // lstrip_blocks: a block or comment tag alone after indentation takes the indentation away.
                const size_t nl = text.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if ((l_pos > 0 || line_starting_) && l_pos < text.size() && all_space(text, l_pos))
                    text.resize(l_pos);
            }
            emit_text(text, text_at);
            pos_ = tag + 2 + (sign ? 1 : 0);
            if (kind == '#') comment(tag);
            else if (kind == '%' && raw_block(tag, sign)) continue;
            else tag_body(kind == '%', tag);
        }
        out_.push_back({Token::Kind::Eof, "", line_of(s_.size()), col_of(s_.size())});
        return std::move(out_);
    }

 private:
    std::string s_;
    size_t pos_ = 0;
    bool line_starting_ = true;  // the previous tag's match ended with a newline
    std::vector<Token> out_;
    std::vector<size_t> line_starts_{0};
    size_t lines_known_ = 0;

    int line_of(size_t at) {
        while (lines_known_ < s_.size() && lines_known_ <= at) {
            if (s_[lines_known_] == '\n') line_starts_.push_back(lines_known_ + 1);
            ++lines_known_;
        }
        size_t lo = 0, hi = line_starts_.size();
        while (hi - lo > 1) {
            const size_t mid = (lo + hi) / 2;
            (line_starts_[mid] <= at ? lo : hi) = mid;
        }
        return int(lo + 1);
    }
    int col_of(size_t at) {
        const int l = line_of(at);
        return int(text::length(std::string_view(s_).substr(line_starts_[size_t(l - 1)], at - line_starts_[size_t(l - 1)])) + 1);
    }
    [[noreturn]] void fail(const std::string& msg, size_t at) { throw TemplateError(msg, line_of(at), col_of(at)); }

    static bool all_space(const std::string& t, size_t from) {
        for (size_t i = from; i < t.size();)
            if (!text::is_space(text::next_cp(t, i))) return false;
        return true;
    }

    size_t find_tag(size_t from) const {
        for (size_t i = from; i + 1 < s_.size(); ++i)
            if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
        return std::string::npos;
    }

    void emit_text(const std::string& t, size_t at) {
        if (!t.empty()) out_.push_back({Token::Kind::Text, t, line_of(at), col_of(at)});
    }

    // After a block or comment end: `-` eats all following whitespace, `+` nothing, plain ends eat one newline.
    void after_end(char sign, size_t end_pos) {
        pos_ = end_pos;
        if (sign == '-') {
            while (pos_ < s_.size()) {
                size_t k = pos_;
                if (!text::is_space(text::next_cp(s_, k))) break;
                pos_ = k;
            }
        } else if (sign == 0 && pos_ < s_.size() && s_[pos_] == '\n') {
            ++pos_;  // trim_blocks
        }
        line_starting_ = pos_ > 0 && s_[pos_ - 1] == '\n' && pos_ > end_pos;
    }

    void comment(size_t tag) {
        const size_t end = s_.find("#}", pos_);
        if (end == std::string::npos) fail("missing end of comment tag", tag);
        char sign = 0;
        if (end > pos_ && (s_[end - 1] == '-' || s_[end - 1] == '+')) sign = s_[end - 1];
        after_end(sign, end + 2);
    }

    // {% raw %}...{% endraw %}: the text in between is output as it stands.
    bool raw_block(size_t tag, char sign) {
        size_t i = pos_;
        while (i < s_.size() && text::is_space(uint8_t(s_[i]))) ++i;
        if (s_.compare(i, 3, "raw") != 0) return false;
        i += 3;
        while (i < s_.size() && text::is_space(uint8_t(s_[i]))) ++i;
        bool minus = false;
        if (i < s_.size() && s_[i] == '-') {
            minus = true;
            ++i;
        }
        if (s_.compare(i, 2, "%}") != 0) return false;
        i += 2;
        if (minus)
            while (i < s_.size() && text::is_space(uint8_t(s_[i]))) ++i;
        // find {%[-+]? endraw [-+]?%}
        for (size_t k = s_.find("{%", i); k != std::string::npos; k = s_.find("{%", k + 2)) {
            size_t j = k + 2;
            char open_sign = 0;
            if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) open_sign = s_[j++];
            while (j < s_.size() && text::is_space(uint8_t(s_[j]))) ++j;
            if (s_.compare(j, 6, "endraw") != 0) continue;
            j += 6;
            while (j < s_.size() && text::is_space(uint8_t(s_[j]))) ++j;
            char close_sign = 0;
            if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) close_sign = s_[j++];
            if (s_.compare(j, 2, "%}") != 0) continue;
            std::string body = s_.substr(i, k - i);
            if (open_sign == '-') body = text::strip(body, nullptr, false, true);
            else if (open_sign != '+') {
                const size_t nl = body.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if (l_pos > 0 && l_pos < body.size() && all_space(body, l_pos)) body.resize(l_pos);
            }
            emit_text(body, i);
            after_end(close_sign, j + 2);
            return true;
        }
        (void)sign;
        fail("missing end of raw directive", tag);
    }

    void tag_body(bool block, size_t tag) {
        out_.push_back({block ? Token::Kind::BlockBegin : Token::Kind::VarBegin, "", line_of(tag), col_of(tag)});
        std::vector<char> brackets;
        while (true) {
            if (pos_ >= s_.size()) fail(block ? "unexpected end of template: missing '%}'" : "unexpected end of template: missing '}}'", tag);
            if (brackets.empty()) {
                if (block) {
                    for (const char* end : {"+%}", "-%}", "%}"})
                        if (s_.compare(pos_, std::strlen(end), end) == 0) {
                            const size_t at = pos_;
                            out_.push_back({Token::Kind::BlockEnd, "", line_of(at), col_of(at)});
                            after_end(end[0] == '%' ? 0 : end[0], at + std::strlen(end));
                            return;
                        }
                } else {
                    for (const char* end : {"-}}", "}}"})
                        if (s_.compare(pos_, std::strlen(end), end) == 0) {
                            const size_t at = pos_;
                            out_.push_back({Token::Kind::VarEnd, "", line_of(at), col_of(at)});
                            after_end(end[0] == '-' ? '-' : '+', at + std::strlen(end));  // no trim_blocks for {{ }}
                            return;
                        }
                }
            }
            size_t k = pos_;
            if (text::is_space(text::next_cp(s_, k))) {
                pos_ = k;
                continue;
            }
            const size_t at = pos_;
            const char c = s_[pos_];
            if (std::isdigit(uint8_t(c))) number(at);
            else if (std::isalpha(uint8_t(c)) || c == '_') {
                size_t e = pos_;
                while (e < s_.size() && (std::isalnum(uint8_t(s_[e])) || s_[e] == '_')) ++e;
                out_.push_back({Token::Kind::Name, s_.substr(pos_, e - pos_), line_of(at), col_of(at)});
                pos_ = e;
            } else if (c == '\'' || c == '"') {
                string_literal(at);
            } else {
                op(at, brackets);
            }
        }
    }

    void number(size_t at) {
        auto digits = [&](size_t i) {  // \d+(_\d+)*
            size_t e = i;
            while (e < s_.size() && std::isdigit(uint8_t(s_[e]))) ++e;
            while (e + 1 < s_.size() && s_[e] == '_' && std::isdigit(uint8_t(s_[e + 1]))) {
                ++e;
                while (e < s_.size() && std::isdigit(uint8_t(s_[e]))) ++e;
            }
            return e;
        };
        size_t e = digits(pos_);
        bool is_float = false;
        if (e + 1 < s_.size() && s_[e] == '.' && std::isdigit(uint8_t(s_[e + 1]))) {
            e = digits(e + 1);
            is_float = true;
        }
        if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
            size_t x = e + 1;
            if (x < s_.size() && (s_[x] == '+' || s_[x] == '-')) ++x;
            if (x < s_.size() && std::isdigit(uint8_t(s_[x]))) {
                e = digits(x);
                is_float = true;
            }
        }
        std::string t;
        for (size_t i = pos_; i < e; ++i)
            if (s_[i] != '_') t += s_[i];
        out_.push_back({is_float ? Token::Kind::Float : Token::Kind::Int, t, line_of(at), col_of(at)});
        pos_ = e;
    }

    // A quoted literal, with Python's backslash escapes decoded.
    void string_literal(size_t at) {
        const char q = s_[pos_];
        std::string v;
        size_t i = pos_ + 1;
        auto hex = [&](size_t n) -> uint32_t {
            uint32_t cp = 0;
            for (size_t k = 0; k < n; ++k) {
                if (i + k >= s_.size() || !std::isxdigit(uint8_t(s_[i + k]))) fail("truncated escape in string literal", at);
                const char h = s_[i + k];
                cp = cp * 16 + uint32_t(std::isdigit(uint8_t(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
            }
            i += n;
            return cp;
        };
        while (true) {
            if (i >= s_.size()) fail("unterminated string literal", at);
            const char c = s_[i];
            if (c == q) break;
            if (c != '\\') {
                v += c;
                ++i;
                continue;
            }
            if (i + 1 >= s_.size()) fail("unterminated string literal", at);
            const char e = s_[i + 1];
            i += 2;
            switch (e) {
                case 'n': v += '\n'; break;
                case 't': v += '\t'; break;
                case 'r': v += '\r'; break;
                case '\\': v += '\\'; break;
                case '\'': v += '\''; break;
                case '"': v += '"'; break;
                case 'a': v += '\a'; break;
                case 'b': v += '\b'; break;
                case 'f': v += '\f'; break;
                case 'v': v += '\v'; break;
                case '\n': break;  // a backslash before a newline joins the lines
                case 'x': text::append_cp(v, hex(2)); break;
                case 'u': text::append_cp(v, hex(4)); break;
                case 'U': {
                    const uint32_t cp = hex(8);
                    if (cp > 0x10FFFF) fail("invalid \\U escape in string literal", at);
                    text::append_cp(v, cp);
                    break;
                }
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t cp = uint32_t(e - '0');
                        for (int k = 0; k < 2 && i < s_.size() && s_[i] >= '0' && s_[i] <= '7'; ++k) cp = cp * 8 + uint32_t(s_[i++] - '0');
                        text::append_cp(v, cp);
                    } else {
                        v += '\\';  // Python keeps unknown escapes as they are
                        v += e;
                    }
            }
        }
        out_.push_back({Token::Kind::String, v, line_of(at), col_of(at)});
        pos_ = i + 1;
    }

    void op(size_t at, std::vector<char>& brackets) {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]",
                                           "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};
        for (const char* o : kOps) {
            const size_t n = std::strlen(o);
            if (s_.compare(pos_, n, o) != 0) continue;
            const char c = o[0];
            if (n == 1 && (c == '(' || c == '[' || c == '{')) brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
            if (n == 1 && (c == ')' || c == ']' || c == '}')) {
                if (brackets.empty()) fail(std::string("unexpected '") + c + "'", at);
                if (brackets.back() != c) fail(std::string("unexpected '") + c + "', expected '" + brackets.back() + "'", at);
                brackets.pop_back();
            }
            out_.push_back({Token::Kind::Op, o, line_of(at), col_of(at)});
            pos_ += n;
            return;
        }
        size_t k = pos_;
        std::string ch;
        text::append_cp(ch, text::next_cp(s_, k));
        fail("unexpected character '" + ch + "'", at);
    }
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(normalize(source)).run(); }

}  // namespace tessera::jinja
