// JSON in and out: to_json is Python's json.dumps as Hugging Face's tojson calls it (ensure_ascii=False,
// so non-ASCII text stays as it is; ", " and ": " separators, or "," and newlines with indent); from_json
// reads conversations and tool definitions into values.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "models/jinja/jinja.h"
#include "models/jinja/text.h"

namespace tessera::jinja {

namespace {

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const size_t at = i;
        const uint32_t c = text::next_cp(s, i);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20 || (c >= 0xD800 && c < 0xE000)) {
                    char b[8];
                    std::snprintf(b, sizeof b, "\\u%04x", c);
                    out += b;
                } else {
                    out.append(s, at, i - at);
                }
        }
    }
    out += '"';
}

void dump(std::string& out, const Value& v, int indent, bool sort_keys, int level) {
    auto newline = [&](int lvl) {
        out += '\n';
        out.append(size_t(indent) * size_t(lvl), ' ');
    };
    if (level > 512) throw Fault{"value nests too deeply for tojson"};
    switch (v.kind) {
        case Value::Kind::None: out += "null"; return;
        case Value::Kind::Bool: out += v.b ? "true" : "false"; return;
        case Value::Kind::Int: out += std::to_string(v.i); return;
        case Value::Kind::Float:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
            else out += float_repr(v.f);
            return;
        case Value::Kind::String: json_string(out, v.s); return;
        case Value::Kind::List: {
            if (v.list->generator) throw Fault{"Object of type generator is not JSON serializable"};
            const auto& items = v.list->items;
            if (items.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            for (size_t k = 0; k < items.size(); ++k) {
                if (k) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(level + 1);
                dump(out, items[k], indent, sort_keys, level + 1);
            }
            if (indent >= 0) newline(level);
            out += ']';
            return;
        }
        case Value::Kind::Dict: {
            auto entries = v.dict->entries;
            if (entries.empty()) {
                out += "{}";
                return;
            }
            if (sort_keys)
                std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            out += '{';
            for (size_t k = 0; k < entries.size(); ++k) {
                if (k) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(level + 1);
                json_string(out, entries[k].first);
                out += ": ";
                dump(out, entries[k].second, indent, sort_keys, level + 1);
            }
            if (indent >= 0) newline(level);
            out += '}';
            return;
        }
        case Value::Kind::Undefined: throw Fault{"Object of type Undefined is not JSON serializable"};
        case Value::Kind::Namespace: throw Fault{"Object of type Namespace is not JSON serializable"};
        case Value::Kind::Callable: throw Fault{"Object of type function is not JSON serializable"};
    }
}

class JsonReader {
 public:
    explicit JsonReader(const std::string& s) : s_(s) {}
    Value document() {
        Value v = value(0);
        ws();
        if (p_ != s_.size()) fail("unexpected text after the JSON value");
        return v;
    }

 private:
    const std::string& s_;
    size_t p_ = 0;

    [[noreturn]] void fail(const std::string& msg) const { throw Error(format("JSON at byte %zu: %s", p_, msg.c_str())); }
    void ws() {
        while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
    }
    bool lit(const char* w) {
        const size_t n = std::char_traits<char>::length(w);
        if (s_.compare(p_, n, w) != 0) return false;
        p_ += n;
        return true;
    }
    uint32_t hex4() {
        if (p_ + 4 > s_.size()) fail("truncated \\u escape");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[p_++];
            if (!std::isxdigit(uint8_t(c))) fail("bad \\u escape");
            v = v * 16 + uint32_t(std::isdigit(uint8_t(c)) ? c - '0' : std::tolower(c) - 'a' + 10);
        }
        return v;
    }
    std::string str() {
        ++p_;  // "
        std::string out;
        while (true) {
            if (p_ >= s_.size()) fail("unterminated string");
            const char c = s_[p_++];
            if (c == '"') return out;
            if (uint8_t(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (p_ >= s_.size()) fail("unterminated string");
            const char e = s_[p_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(p_, 2, "\\u") == 0) {
                        p_ += 2;
                        const uint32_t lo = hex4();
                        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        else fail("unpaired surrogate");
                    }
                    text::append_cp(out, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
    Value value(int depth) {
        if (depth > 512) fail("nesting too deep");
        ws();
        if (p_ >= s_.size()) fail("unexpected end");
        const char c = s_[p_];
        if (c == '{') {
            ++p_;
            auto d = std::make_shared<Dict>();
            ws();
            if (p_ < s_.size() && s_[p_] == '}') {
                ++p_;
                return Value::make_dict(d);
            }
            while (true) {
                ws();
                if (p_ >= s_.size() || s_[p_] != '"') fail("expected a string key");
                std::string k = str();
                ws();
                if (p_ >= s_.size() || s_[p_] != ':') fail("expected ':'");
                ++p_;
                d->set(k, value(depth + 1));
                ws();
                if (p_ < s_.size() && s_[p_] == ',') {
                    ++p_;
                    continue;
                }
                if (p_ < s_.size() && s_[p_] == '}') {
                    ++p_;
                    return Value::make_dict(d);
                }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            ++p_;
            std::vector<Value> items;
            ws();
            if (p_ < s_.size() && s_[p_] == ']') {
                ++p_;
                return Value::make_list(std::move(items));
            }
            while (true) {
                items.push_back(value(depth + 1));
                ws();
                if (p_ < s_.size() && s_[p_] == ',') {
                    ++p_;
                    continue;
                }
                if (p_ < s_.size() && s_[p_] == ']') {
                    ++p_;
                    return Value::make_list(std::move(items));
                }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') return Value::str(str());
        if (lit("true")) return Value::boolean(true);
        if (lit("false")) return Value::boolean(false);
        if (lit("null")) return Value::none();
        if (c == '-' || std::isdigit(uint8_t(c))) {
            const size_t b = p_;
            if (s_[p_] == '-') ++p_;
            while (p_ < s_.size() && std::isdigit(uint8_t(s_[p_]))) ++p_;
            bool real = false;
            if (p_ < s_.size() && s_[p_] == '.') {
                real = true;
                ++p_;
                while (p_ < s_.size() && std::isdigit(uint8_t(s_[p_]))) ++p_;
            }
            if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
                real = true;
                ++p_;
                if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
                while (p_ < s_.size() && std::isdigit(uint8_t(s_[p_]))) ++p_;
            }
            const std::string num = s_.substr(b, p_ - b);
            if (num == "-" ) fail("bad number");
            if (!real) {
                errno = 0;
                const long long v = std::strtoll(num.c_str(), nullptr, 10);
                if (errno != ERANGE) return Value::integer(v);
            }
            return Value::real(std::strtod(num.c_str(), nullptr));
        }
        fail(std::string("unexpected character '") + c + "'");
    }
};

}  // namespace

std::string to_json(const Value& v, int indent, bool sort_keys) {
    std::string out;
    dump(out, v, indent, sort_keys, 0);
    return out;
}

Value from_json(const std::string& json) { return JsonReader(json).document(); }

}  // namespace tessera::jinja
