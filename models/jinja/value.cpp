#include "models/jinja/value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "models/jinja/text.h"

namespace tessera::jinja {

Value Value::make_list(std::vector<Value> items, bool tuple) {
    Value v = of(Kind::List);
    auto l = std::make_shared<List>();
    l->items = std::move(items);
    l->tuple = tuple;
    v.list = std::move(l);
    return v;
}

Value Value::make_generator(std::vector<Value> items) {
    Value v = make_list(std::move(items));
    std::const_pointer_cast<List>(v.list)->generator = true;
    return v;
}

Value Value::make_dict(std::shared_ptr<Dict> d) {
    Value v = of(Kind::Dict);
    v.dict = std::move(d);
    return v;
}

Value Value::make_namespace(std::shared_ptr<Dict> d) {
    Value v = of(Kind::Namespace);
    v.dict = std::move(d);
    return v;
}

Value Value::function(std::string name, NativeFn fn) {
    Value v = of(Kind::Callable);
    v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
    return v;
}

const Value* Dict::find(const std::string& key) const {
    for (const auto& [k, v] : entries)
        if (k == key) return &v;
    return nullptr;
}

void Dict::set(const std::string& key, Value v) {
    for (auto& [k, old] : entries)
        if (k == key) {
            old = std::move(v);
            return;
        }
    entries.emplace_back(key, std::move(v));
}

bool Value::truthy() const {
    switch (kind) {
        case Kind::Undefined:
        case Kind::None: return false;
        case Kind::Bool: return b;
        case Kind::Int: return i != 0;
        case Kind::Float: return f != 0;
        case Kind::String: return !s.empty();
        case Kind::List: return list->generator || !list->items.empty();
        case Kind::Dict: return !dict->entries.empty();
        case Kind::Namespace:
        case Kind::Callable: return true;
    }
    return false;
}

const char* Value::type_name() const {
    switch (kind) {
        case Kind::Undefined: return "Undefined";
        case Kind::None: return "NoneType";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::String: return "str";
        case Kind::List: return list->generator ? "generator" : list->tuple ? "tuple" : "list";
        case Kind::Dict: return "dict";
        case Kind::Namespace: return "Namespace";
        case Kind::Callable: return "function";
    }
    return "?";
}

std::string float_repr(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
    if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
    // The shortest digit string that reads back as x, then Python's layout for it.
    char buf[40];
    int prec = 1;
    for (; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
        if (std::strtod(buf, nullptr) == x) break;
    }
    std::string m(buf);
    const size_t epos = m.find('e');
    const int exp = std::atoi(m.c_str() + epos + 1);
    std::string digits;
    bool neg = false;
    for (size_t k = 0; k < epos; ++k) {
        if (m[k] == '-') neg = true;
        else if (m[k] != '.') digits += m[k];
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    std::string out = neg ? "-" : "";
    if (exp < -4 || exp >= 16) {
        out += digits.substr(0, 1);
        if (digits.size() > 1) {
            out += '.';
            out += digits.substr(1);
        }
        char e[8];
        std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp) % 1000);
        return out + e;
    }
    if (exp < 0) return out + "0." + std::string(size_t(-exp - 1), '0') + digits;
    if (size_t(exp) + 1 >= digits.size()) return out + digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    return out + digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
}

namespace {

// Python's repr of a str: single quotes unless the text has ' and no ", escapes for control characters.
std::string repr_string(const std::string& s) {
    const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = dq ? '"' : '\'';
    std::string out(1, q);
    for (size_t i = 0; i < s.size();) {
        const uint32_t c = text::next_cp(s, i);
        if (c == uint32_t(q) || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0) || c == 0xAD) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else if (c >= 0xD800 && c < 0xE000) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
        } else {
            text::append_cp(out, c);
        }
    }
    return out + q;
}

}  // namespace

std::string Value::repr() const {
    switch (kind) {
        case Kind::String: return repr_string(s);
        case Kind::List: {
            if (list->generator) return "<generator object>";
            std::string out = list->tuple ? "(" : "[";
            for (size_t k = 0; k < list->items.size(); ++k) out += (k ? ", " : "") + list->items[k].repr();
            if (list->tuple && list->items.size() == 1) out += ",";
            return out + (list->tuple ? ")" : "]");
        }
        case Kind::Dict: {
            std::string out = "{";
            bool first = true;
            for (const auto& [k, v] : dict->entries) {
                out += (first ? "" : ", ") + repr_string(k) + ": " + v.repr();
                first = false;
            }
            return out + "}";
        }
        default: return to_str();
    }
}

std::string Value::to_str() const {
    switch (kind) {
        case Kind::Undefined: return "";
        case Kind::None: return "None";
        case Kind::Bool: return b ? "True" : "False";
        case Kind::Int: return std::to_string(i);
        case Kind::Float: return float_repr(f);
        case Kind::String: return s;
        case Kind::List:
        case Kind::Dict: return repr();
        case Kind::Namespace: {
            std::string out = "<Namespace {";
            bool first = true;
            for (const auto& [k, v] : dict->entries) {
                out += (first ? "" : ", ") + repr_string(k) + ": " + v.repr();
                first = false;
            }
            return out + "}>";
        }
        case Kind::Callable: return "<function " + fn->name + ">";
    }
    return "";
}

namespace {
double as_double(const Value& v) { return v.kind == Value::Kind::Float ? v.f : v.kind == Value::Kind::Bool ? v.b : double(v.i); }
int64_t as_int(const Value& v) { return v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i; }
}  // namespace

bool equal(const Value& a, const Value& b) {
    using K = Value::Kind;
    if (a.is_number() && b.is_number()) {
        if (a.is_integer() && b.is_integer()) return as_int(a) == as_int(b);
        return as_double(a) == as_double(b);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case K::Undefined:
        case K::None: return true;
        case K::String: return a.s == b.s;
        case K::List: {
            if (a.list->generator || b.list->generator) return a.list == b.list;
            if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size()) return false;
            for (size_t k = 0; k < a.list->items.size(); ++k)
                if (!equal(a.list->items[k], b.list->items[k])) return false;
            return true;
        }
        case K::Dict: {
            if (a.dict->entries.size() != b.dict->entries.size()) return false;
            for (const auto& [k, v] : a.dict->entries) {
                const Value* o = b.dict->find(k);
                if (!o || !equal(v, *o)) return false;
            }
            return true;
        }
        case K::Namespace: return a.dict == b.dict;
        case K::Callable: return a.fn == b.fn;
        default: return false;
    }
}

int compare(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_integer() && b.is_integer()) return as_int(a) < as_int(b) ? -1 : as_int(a) > as_int(b) ? 1 : 0;
        const double x = as_double(a), y = as_double(b);
        return x < y ? -1 : x > y ? 1 : 0;  // NaN compares as equal here; Python says False both ways
    }
    if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;  // UTF-8 order = code point order
    if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple && !a.list->generator && !b.list->generator) {
        const auto &x = a.list->items, &y = b.list->items;
        for (size_t k = 0; k < x.size() && k < y.size(); ++k)
            if (!equal(x[k], y[k])) return compare(x[k], y[k]);
        return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
    throw Fault{std::string("'<' not supported between instances of '") + a.type_name() + "' and '" + b.type_name() +
                "'"};
}

}  // namespace tessera::jinja
