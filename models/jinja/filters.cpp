// Jinja2's filters and tests, as builtins.h lists them: the ones chat templates use, each with Jinja2
// 3.1's behaviour (default arguments, what it does with undefined, which errors it raises).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>

#include "models/jinja/builtins.h"
#include "models/jinja/jinja.h"
#include "models/jinja/renderer.h"
#include "models/jinja/text.h"

namespace tessera::jinja {

namespace {

using FilterFn = Value (*)(Renderer&, const Value&, CallArgs&);
using TestFn = bool (*)(Renderer&, const Value&, CallArgs&);

int64_t int_of(const Value& v) { return v.kind == Value::Kind::Bool ? v.b : v.i; }

size_t length_of(const Value& v) {
    switch (v.kind) {
        case Value::Kind::String: return text::length(v.s);
        case Value::Kind::List:
            if (v.list->generator) throw Fault{"object of type 'generator' has no len()"};
            return v.list->items.size();
        case Value::Kind::Dict:
        case Value::Kind::Namespace: return v.dict->entries.size();
        case Value::Kind::Undefined: return 0;
        default: throw Fault{std::string("object of type '") + v.type_name() + "' has no len()"};
    }
}

// attribute="a.b.0": Jinja2's make_attrgetter walks items (dict entries first), one dotted part at a time.
Value attr_path(const Value& item, const Value& attribute) {
    if (attribute.is_integer()) return get_item(item, attribute);
    if (!attribute.is_string()) throw Fault{"attribute must be a string or an integer"};
    Value v = item;
    size_t from = 0;
    while (true) {
        const size_t dot = attribute.s.find('.', from);
        const std::string part = attribute.s.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
        const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (v.is_undefined()) throw Fault{v.s};
        v = digits ? get_item(v, Value::integer(std::atoll(part.c_str()))) : get_item(v, Value::str(part));
        if (dot == std::string::npos) return v;
        from = dot + 1;
    }
}

// Sort key comparison with Jinja2's case_sensitive=False default: strings compare lower-cased.
int compare_key(const Value& a, const Value& b, bool case_sensitive) {
    if (!case_sensitive && a.is_string() && b.is_string()) return compare(Value::str(text::lower(a.s)), Value::str(text::lower(b.s)));
    return compare(a, b);
}

Value ignore_case(const Value& v, bool case_sensitive) {
    return !case_sensitive && v.is_string() ? Value::str(text::lower(v.s)) : v;
}

bool run_test(Renderer& r, const std::string& name, const Value& v, const std::vector<Value>& extra) {
    CallArgs a;
    a.pos = extra;
    return apply_test(r, name, v, a);
}

// select/reject and selectattr/rejectattr: keep the items whose (attribute's) test result is `keep`.
Value select_items(Renderer& r, const Value& seq, CallArgs& a, bool by_attr, bool keep) {
    size_t k = 0;
    Value attribute;
    if (by_attr) {
        if (a.pos.empty()) throw Fault{"selectattr/rejectattr need an attribute"};
        attribute = a.pos[k++];
    }
    std::string test;
    if (k < a.pos.size()) {
        if (!a.pos[k].is_string()) throw Fault{"the test name must be a string"};
        test = a.pos[k++].s;
        if (!is_test(test)) throw Fault{"no test named '" + test + "'"};
    }
    const std::vector<Value> extra(a.pos.begin() + long(k), a.pos.end());
    std::vector<Value> out;
    if (!seq.truthy()) return Value::make_generator({});  // Jinja2 walks the sequence only when it is true
    for (const auto& item : iterate(seq)) {
        r.step();
        const Value v = by_attr ? attr_path(item, attribute) : item;
        const bool pass = test.empty() ? v.truthy() : run_test(r, test, v, extra);
        if (pass == keep) out.push_back(item);
    }
    return Value::make_generator(std::move(out));
}

std::string indent_text(const std::string& s0, const Value& width, bool first, bool blank) {
    const std::string pad = width.is_string() ? width.s : std::string(size_t(std::max<int64_t>(0, int_of(width))), ' ');
    const std::vector<std::string> lines = text::splitlines(s0 + "\n");
    std::string rv;
    if (blank) {
        for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + pad : "") + lines[k];
    } else {
        rv = lines.empty() ? "" : lines[0];
        for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : pad + lines[k]);
    }
    return first ? pad + rv : rv;
}

// Jinja2's title filter: every word (after -, whitespace or an opening bracket) gets an upper-case first
// letter and lower-case rest (unlike str.title(), an apostrophe does not start a word).
std::string title_filter(const std::string& s) {
    std::string out;
    bool start = true;
    for (size_t i = 0; i < s.size();) {
        const size_t at = i;
        const uint32_t c = text::next_cp(s, i);
        const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || text::is_space(c);
        const std::string ch = s.substr(at, i - at);
        if (sep) {
            out += ch;
            start = true;
        } else {
            out += start ? text::upper(ch) : text::lower(ch);
            start = false;
        }
    }
    return out;
}

Value to_int(const Value& v, const Value& dflt) {
    switch (v.kind) {
        case Value::Kind::Bool:
        case Value::Kind::Int: return Value::integer(int_of(v));
        case Value::Kind::Float:
            if (!std::isfinite(v.f) || std::fabs(v.f) > 9.2e18) return dflt;
            return Value::integer(int64_t(v.f));
        case Value::Kind::String: {
            std::string t = text::strip(v.s, nullptr, true, true);
            t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
            if (t.empty()) return dflt;
            char* end = nullptr;
            errno = 0;
            const long long x = std::strtoll(t.c_str(), &end, 10);
            if (*end == '\0' && errno == 0) return Value::integer(x);
            const double d = std::strtod(t.c_str(), &end);
            if (*end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(int64_t(d));
            return dflt;
        }
        default: return dflt;
    }
}

Value sorted_items(Renderer& r, const Value& v, CallArgs& a) {
    a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
    const bool reverse = a.get(0, "reverse", Value::boolean(false)).truthy();
    const bool cs = a.get(1, "case_sensitive", Value::boolean(false)).truthy();
    const Value attribute = a.get(2, "attribute");
    std::vector<Value> items = iterate(v);
    std::vector<Value> keys;
    for (const auto& item : items) keys.push_back(attribute.is_none() ? item : attr_path(item, attribute));
    std::vector<size_t> order(items.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        r.step();
        const int c = compare_key(keys[x], keys[y], cs);
        return reverse ? c > 0 : c < 0;
    });
    std::vector<Value> out;
    for (size_t k : order) out.push_back(items[k]);
    return Value::make_list(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool want_max) {
    a.check(want_max ? "max" : "min", 2, {"case_sensitive", "attribute"});
    const bool cs = a.get(0, "case_sensitive", Value::boolean(false)).truthy();
    const Value attribute = a.get(1, "attribute");
    Value best;
    bool have = false;
    for (const auto& item : iterate(v)) {
        const Value key = attribute.is_none() ? item : attr_path(item, attribute);
        if (!have || (want_max ? compare_key(key, attribute.is_none() ? best : attr_path(best, attribute), cs) > 0
                               : compare_key(key, attribute.is_none() ? best : attr_path(best, attribute), cs) < 0)) {
            best = item;
            have = true;
        }
    }
    return have ? best : Value::undefined(std::string("No ") + (want_max ? "largest" : "smallest") + " item, sequence was empty.");
}

// Filters that work on soft_str(value) give Markup back for Markup.
Value keep_markup(const Value& in, std::string out) {
    Value v = Value::str(std::move(out));
    v.safe = in.is_string() && in.safe;
    return v;
}

const std::pair<const char*, FilterFn> kFilters[] = {
    {"abs", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("abs", 0, {});
         if (v.kind == Value::Kind::Float) return Value::real(std::fabs(v.f));
         if (!v.is_integer()) throw Fault{std::string("bad operand type for abs(): '") + v.type_name() + "'"};
         if (int_of(v) == INT64_MIN) throw Fault{"integer overflow"};
         return Value::integer(std::llabs(int_of(v)));
     }},
    {"capitalize", [](Renderer&, const Value& v, CallArgs& a) { a.check("capitalize", 0, {}); return keep_markup(v, text::capitalize(v.to_str())); }},
    {"count", [](Renderer&, const Value& v, CallArgs& a) { a.check("count", 0, {}); return Value::integer(int64_t(length_of(v))); }},
    {"default", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("default", 2, {"default_value", "boolean"});
         const bool boolean = a.get(1, "boolean", Value::boolean(false)).truthy();
         if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", Value::str(""));
         return v;
     }},
    {"dictsort", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
         if (!v.is_dict()) throw Fault{"You can only sort by either 'key' or 'value'"};
         const bool cs = a.get(0, "case_sensitive", Value::boolean(false)).truthy();
         const Value by = a.get(1, "by", Value::str("key"));
         const bool reverse = a.get(2, "reverse", Value::boolean(false)).truthy();
         if (!by.is_string() || (by.s != "key" && by.s != "value")) throw Fault{"You can only sort by either 'key' or 'value'"};
         std::vector<std::pair<std::string, Value>> e = v.dict->entries;
         std::stable_sort(e.begin(), e.end(), [&](const auto& x, const auto& y) {
             r.step();
             const int c = by.s == "key" ? compare_key(Value::str(x.first), Value::str(y.first), cs) : compare_key(x.second, y.second, cs);
             return reverse ? c > 0 : c < 0;
         });
         std::vector<Value> out;
         for (auto& [k, x] : e) out.push_back(Value::make_list({Value::str(k), x}, true));
         return Value::make_list(std::move(out));
     }},
    {"escape", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("escape", 0, {});
         Value m = v.is_string() && v.safe ? v : Value::str(text::html_escape(v.to_str()));
         m.safe = true;
         return m;
     }},
    {"first", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("first", 0, {});
         if (v.is_generator()) {
             if (v.list->consumed < v.list->items.size()) return v.list->items[v.list->consumed++];
             return Value::undefined("No first item, sequence was empty.");
         }
         if (v.is_list() || v.is_dict() || v.is_string() || v.is_undefined()) {
             const auto items = iterate(v);
             if (!items.empty()) return items.front();
             return Value::undefined("No first item, sequence was empty.");
         }
         throw Fault{std::string("'") + v.type_name() + "' object is not iterable"};
     }},
    {"float", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("float", 1, {"default"});
         const Value dflt = a.get(0, "default", Value::real(0.0));
         if (v.is_number()) return Value::real(v.kind == Value::Kind::Float ? v.f : double(int_of(v)));
         if (v.is_string()) {
             const std::string t = text::strip(v.s, nullptr, true, true);
             char* end = nullptr;
             const double d = std::strtod(t.c_str(), &end);
             if (!t.empty() && *end == '\0') return Value::real(d);
         }
         return dflt;
     }},
    {"indent", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("indent", 3, {"width", "first", "blank"});
         return Value::str(indent_text(v.to_str(), a.get(0, "width", Value::integer(4)), a.get(1, "first", Value::boolean(false)).truthy(),
                                       a.get(2, "blank", Value::boolean(false)).truthy()));
     }},
    {"int", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("int", 2, {"default", "base"});
         return to_int(v, a.get(0, "default", Value::integer(0)));
     }},
    {"items", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("items", 0, {});
         if (v.is_undefined()) return Value::make_generator({});
         if (!v.is_dict()) throw Fault{"Can only get item pairs from a mapping."};
         std::vector<Value> out;
         for (const auto& [k, x] : v.dict->entries) out.push_back(Value::make_list({Value::str(k), x}, true));
         return Value::make_generator(std::move(out));
     }},
    {"join", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("join", 2, {"d", "attribute"});
         const Value sep = a.get(0, "d", Value::str(""));
         const Value attribute = a.get(1, "attribute");
         const std::string s = sep.to_str();
         std::string out;
         bool first = true;
         for (const auto& item : iterate(v)) {
             out += (first ? "" : s) + (attribute.is_none() ? item : attr_path(item, attribute)).to_str();
             first = false;
             r.check_size(out.size());
         }
         return Value::str(std::move(out));
     }},
    {"last", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("last", 0, {});
         if (v.is_undefined()) throw Fault{v.s};
         if (v.is_generator()) throw Fault{"'generator' object is not reversible"};
         const auto items = iterate(v);
         if (!items.empty()) return items.back();
         return Value::undefined("No last item, sequence was empty.");
     }},
    {"length", [](Renderer&, const Value& v, CallArgs& a) { a.check("length", 0, {}); return Value::integer(int64_t(length_of(v))); }},
    {"list", [](Renderer&, const Value& v, CallArgs& a) { a.check("list", 0, {}); return Value::make_list(iterate(v)); }},
    {"lower", [](Renderer&, const Value& v, CallArgs& a) { a.check("lower", 0, {}); return keep_markup(v, text::lower(v.to_str())); }},
    {"map", [](Renderer& r, const Value& v, CallArgs& a) {
         std::vector<Value> out;
         if (!v.truthy()) return Value::make_generator({});  // Jinja2 walks the sequence only when it is true
         if (a.pos.empty()) {
             a.check("map", 0, {"attribute", "default"});
             const Value attribute = a.get(99, "attribute");
             if (attribute.is_none()) throw Fault{"map() needs a filter name or attribute="};
             const Value dflt = a.get(99, "default", Value());
             bool has_default = false;
             for (const auto& [k, x] : a.kw) has_default |= k == "default";
             for (const auto& item : iterate(v)) {
                 r.step();
                 Value x = attr_path(item, attribute);
                 out.push_back(has_default && x.is_undefined() ? dflt : x);
             }
             return Value::make_generator(std::move(out));
         }
         if (!a.pos[0].is_string() || !is_filter(a.pos[0].s)) throw Fault{"no filter named " + a.pos[0].repr()};
         const std::string name = a.pos[0].s;
         CallArgs rest;
         rest.pos.assign(a.pos.begin() + 1, a.pos.end());
         rest.kw = a.kw;
         for (const auto& item : iterate(v)) {
             CallArgs each = rest;
             out.push_back(apply_filter(r, name, item, each));
         }
         return Value::make_generator(std::move(out));
     }},
    {"max", [](Renderer&, const Value& v, CallArgs& a) { return min_max(v, a, true); }},
    {"min", [](Renderer&, const Value& v, CallArgs& a) { return min_max(v, a, false); }},
    {"reject", [](Renderer& r, const Value& v, CallArgs& a) { return select_items(r, v, a, false, false); }},
    {"rejectattr", [](Renderer& r, const Value& v, CallArgs& a) { return select_items(r, v, a, true, false); }},
    {"replace", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("replace", 3, {"old", "new", "count"});
         const Value from = a.get(0, "old"), to = a.get(1, "new");
         const Value count = a.get(2, "count");
         std::string s = text::replace(v.to_str(), from.to_str(), to.to_str(), count.is_none() ? -1 : int_of(count));
         r.check_size(s.size());
         return Value::str(std::move(s));
     }},
    {"reverse", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("reverse", 0, {});
         if (v.is_string()) {
             auto cps = text::code_points(v.s);
             std::string out;
             for (auto it = cps.rbegin(); it != cps.rend(); ++it) text::append_cp(out, *it);
             return Value::str(std::move(out));
         }
         if (v.is_generator()) throw Fault{"'generator' object is not reversible"};
         auto items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::make_generator(std::move(items));
     }},
    {"round", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("round", 2, {"precision", "method"});
         if (!v.is_number()) throw Fault{std::string("type ") + v.type_name() + " doesn't define __round__ method"};
         const double x = v.kind == Value::Kind::Float ? v.f : double(int_of(v));
         const int64_t p = int_of(a.get(0, "precision", Value::integer(0)));
         const std::string method = a.get(1, "method", Value::str("common")).to_str();
         const double m = std::pow(10.0, double(p));
         if (method == "ceil") return Value::real(std::ceil(x * m) / m);
         if (method == "floor") return Value::real(std::floor(x * m) / m);
         if (method != "common") throw Fault{"method must be common, ceil or floor"};
         return Value::real(std::nearbyint(x * m) / m);  // Python rounds half to even
     }},
    {"safe", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("safe", 0, {});
         Value m = v.is_string() ? v : Value::str(v.to_str());
         m.safe = true;
         return m;
     }},
    {"select", [](Renderer& r, const Value& v, CallArgs& a) { return select_items(r, v, a, false, true); }},
    {"selectattr", [](Renderer& r, const Value& v, CallArgs& a) { return select_items(r, v, a, true, true); }},
    {"sort", sorted_items},
    {"string", [](Renderer&, const Value& v, CallArgs& a) { a.check("string", 0, {}); return v.is_string() ? v : Value::str(v.to_str()); }},
    {"sum", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("sum", 2, {"attribute", "start"});
         const Value attribute = a.get(0, "attribute");
         Value acc = a.get(1, "start", Value::integer(0));
         for (const auto& item : iterate(v)) {
             r.step();
             const Value x = attribute.is_none() ? item : attr_path(item, attribute);
             if (!acc.is_number() || !x.is_number()) throw Fault{std::string("unsupported operand type(s) for +: '") + acc.type_name() + "' and '" + x.type_name() + "'"};
             if (acc.is_integer() && x.is_integer()) {
                 int64_t s;
                 if (__builtin_add_overflow(int_of(acc), int_of(x), &s)) throw Fault{"integer overflow"};
                 acc = Value::integer(s);
             } else {
                 acc = Value::real((acc.kind == Value::Kind::Float ? acc.f : double(int_of(acc))) + (x.kind == Value::Kind::Float ? x.f : double(int_of(x))));
             }
         }
         return acc;
     }},
    {"title", [](Renderer&, const Value& v, CallArgs& a) { a.check("title", 0, {}); return Value::str(title_filter(v.to_str())); }},
    {"tojson", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
         if (a.get(0, "ensure_ascii", Value::boolean(false)).truthy()) throw Fault{"tojson(ensure_ascii=true) is not supported"};
         const Value indent = a.get(1, "indent");
         if (!indent.is_none() && !indent.is_integer()) throw Fault{"tojson: indent must be an integer"};
         if (!a.get(2, "separators").is_none()) throw Fault{"tojson(separators=...) is not supported"};
         std::string s = to_json(v, indent.is_none() ? -1 : int(std::clamp<int64_t>(int_of(indent), 0, 64)),
                                 a.get(3, "sort_keys", Value::boolean(false)).truthy());
         r.check_size(s.size());
         return Value::str(std::move(s));
     }},
    {"trim", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("trim", 1, {"chars"});
         const Value chars = a.get(0, "chars");
         if (!chars.is_none() && !chars.is_string()) throw Fault{"strip arg must be None or str"};
         return keep_markup(v, text::strip(v.to_str(), chars.is_none() ? nullptr : &chars.s, true, true));
     }},
    {"unique", [](Renderer& r, const Value& v, CallArgs& a) {
         a.check("unique", 2, {"case_sensitive", "attribute"});
         const bool cs = a.get(0, "case_sensitive", Value::boolean(false)).truthy();
         const Value attribute = a.get(1, "attribute");
         std::vector<Value> out, seen;
         for (const auto& item : iterate(v)) {
             r.step();
             const Value key = ignore_case(attribute.is_none() ? item : attr_path(item, attribute), cs);
             bool dup = false;
             for (const auto& s : seen) dup = dup || equal(s, key);
             if (!dup) {
                 seen.push_back(key);
                 out.push_back(item);
             }
         }
         return Value::make_generator(std::move(out));
     }},
    {"upper", [](Renderer&, const Value& v, CallArgs& a) { a.check("upper", 0, {}); return keep_markup(v, text::upper(v.to_str())); }},
    {"wordcount", [](Renderer&, const Value& v, CallArgs& a) {
         a.check("wordcount", 0, {});
         return Value::integer(int64_t(text::split(v.to_str(), nullptr, -1).size()));
     }},
};

const char* const kFilterAliases[][2] = {{"d", "default"}, {"e", "escape"}};

bool cmp_test(Renderer&, const Value& v, const CallArgs& a, const char* op) {
    if (a.pos.size() != 1) throw Fault{std::string("test needs one argument")};
    const Value& o = a.pos[0];
    const std::string s = op;
    if (s == "==") return equal(v, o);
    if (s == "!=") return !equal(v, o);
    if (v.is_undefined()) throw Fault{v.s};
    const int c = compare(v, o);
    if (s == "<") return c < 0;
    if (s == "<=") return c <= 0;
    if (s == ">") return c > 0;
    return c >= 0;
}

const std::pair<const char*, TestFn> kTests[] = {
    {"boolean", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool; }},
    {"callable", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Callable; }},
    {"defined", [](Renderer&, const Value& v, CallArgs&) { return !v.is_undefined(); }},
    {"divisibleby", [](Renderer&, const Value& v, CallArgs& a) {
         if (a.pos.size() != 1 || !v.is_integer() || !a.pos[0].is_integer()) throw Fault{"divisibleby needs integers"};
         if (int_of(a.pos[0]) == 0) throw Fault{"integer division or modulo by zero"};
         return int_of(v) % int_of(a.pos[0]) == 0;
     }},
    {"eq", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "=="); }},
    {"equalto", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "=="); }},
    {"escaped", [](Renderer&, const Value&, CallArgs&) { return false; }},
    {"even", [](Renderer&, const Value& v, CallArgs&) {
         if (!v.is_integer()) throw Fault{std::string("unsupported operand type(s) for %: '") + v.type_name() + "' and 'int'"};
         return int_of(v) % 2 == 0;
     }},
    {"false", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool && !v.b; }},
    {"filter", [](Renderer&, const Value& v, CallArgs&) { return v.is_string() && is_filter(v.s); }},
    {"float", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Float; }},
    {"ge", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, ">="); }},
    {"gt", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, ">"); }},
    {"greaterthan", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, ">"); }},
    {"in", [](Renderer&, const Value& v, CallArgs& a) {
         if (a.pos.size() != 1) throw Fault{"test 'in' needs one argument"};
         return contains(a.pos[0], v);
     }},
    {"integer", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Int; }},
    {"iterable", [](Renderer&, const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }},
    {"le", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "<="); }},
    {"lessthan", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "<"); }},
    {"lower", [](Renderer&, const Value& v, CallArgs&) { return v.is_string() && text::lower(v.s) == v.s && text::upper(v.s) != v.s; }},
    {"lt", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "<"); }},
    {"mapping", [](Renderer&, const Value& v, CallArgs&) { return v.is_dict(); }},
    {"ne", [](Renderer& r, const Value& v, CallArgs& a) { return cmp_test(r, v, a, "!="); }},
    {"none", [](Renderer&, const Value& v, CallArgs&) { return v.is_none(); }},
    {"number", [](Renderer&, const Value& v, CallArgs&) { return v.is_number(); }},
    {"odd", [](Renderer&, const Value& v, CallArgs&) {
         if (!v.is_integer()) throw Fault{std::string("unsupported operand type(s) for %: '") + v.type_name() + "' and 'int'"};
         return int_of(v) % 2 != 0;
     }},
    {"sameas", [](Renderer&, const Value& v, CallArgs& a) {
         if (a.pos.size() != 1) throw Fault{"test 'sameas' needs one argument"};
         const Value& o = a.pos[0];
         if (v.kind != o.kind) return false;
         switch (v.kind) {
             case Value::Kind::None:
             case Value::Kind::Undefined: return true;
             case Value::Kind::Bool: return v.b == o.b;
             case Value::Kind::List: return v.list == o.list;
             case Value::Kind::Dict:
             case Value::Kind::Namespace: return v.dict == o.dict;
             case Value::Kind::Callable: return v.fn == o.fn;
             default: return equal(v, o);  // small ints and interned strings are identical in CPython
         }
     }},
    {"sequence", [](Renderer&, const Value& v, CallArgs&) { return (v.is_list() && !v.is_generator()) || v.is_dict() || v.is_string() || v.is_undefined(); }},
    {"string", [](Renderer&, const Value& v, CallArgs&) { return v.is_string(); }},
    {"test", [](Renderer&, const Value& v, CallArgs&) { return v.is_string() && is_test(v.s); }},
    {"true", [](Renderer&, const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool && v.b; }},
    {"undefined", [](Renderer&, const Value& v, CallArgs&) { return v.is_undefined(); }},
    {"upper", [](Renderer&, const Value& v, CallArgs&) { return v.is_string() && text::upper(v.s) == v.s && text::lower(v.s) != v.s; }},
};

const char* const kTestAliases[][2] = {{"==", "eq"}, {"!=", "ne"}, {"<", "lt"}, {"<=", "le"}, {">", "gt"}, {">=", "ge"}};

FilterFn find_filter(const std::string& name) {
    std::string n = name;
    for (const auto& al : kFilterAliases)
        if (n == al[0]) n = al[1];
    for (const auto& [k, fn] : kFilters)
        if (n == k) return fn;
    return nullptr;
}

TestFn find_test(const std::string& name) {
    std::string n = name;
    for (const auto& al : kTestAliases)
        if (n == al[0]) n = al[1];
    for (const auto& [k, fn] : kTests)
        if (n == k) return fn;
    return nullptr;
}

}  // namespace

bool is_filter(const std::string& name) { return find_filter(name) != nullptr; }
bool is_test(const std::string& name) { return find_test(name) != nullptr; }

Value apply_filter(Renderer& r, const std::string& name, const Value& subject, CallArgs& args) {
    FilterFn fn = find_filter(name);
    if (!fn) throw Fault{"no filter named '" + name + "'"};
    r.step();
    return fn(r, subject, args);
}

bool apply_test(Renderer& r, const std::string& name, const Value& subject, CallArgs& args) {
    TestFn fn = find_test(name);
    if (!fn) throw Fault{"no test named '" + name + "'"};
    return fn(r, subject, args);
}

}  // namespace tessera::jinja
