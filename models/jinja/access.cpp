// Attribute and item access, slicing, iteration, Python's str and dict methods, and the global functions:
// the builtins.h entries that are about reaching into values rather than filtering them.
#include <cctype>
#include <ctime>

#include "models/jinja/builtins.h"
#include "models/jinja/renderer.h"
#include "models/jinja/text.h"

namespace tessera::jinja {

Value CallArgs::get(size_t index, const char* name, Value fallback) const {
    if (index < pos.size()) return pos[index];
    for (const auto& [k, v] : kw)
        if (k == name) return v;
    return fallback;
}

void CallArgs::check(const char* fn, size_t max_pos, std::initializer_list<const char*> names) const {
    if (pos.size() > max_pos) throw Fault{format("%s() takes at most %zu positional argument(s) (%zu given)", fn, max_pos, pos.size())};
    for (const auto& [k, v] : kw) {
        bool ok = false;
        for (const char* n : names) ok |= k == n;
        if (!ok) throw Fault{std::string(fn) + "() got an unexpected keyword argument '" + k + "'"};
    }
}

std::vector<Value> iterate(const Value& v) {
    switch (v.kind) {
        case Value::Kind::List:
            if (v.list->generator) {
                std::vector<Value> rest(v.list->items.begin() + long(std::min(v.list->consumed, v.list->items.size())), v.list->items.end());
                v.list->consumed = v.list->items.size();
                return rest;
            }
            return v.list->items;
        case Value::Kind::Dict: {
            std::vector<Value> keys;
            for (const auto& [k, x] : v.dict->entries) keys.push_back(Value::str(k));
            return keys;
        }
        case Value::Kind::String: {
            std::vector<Value> chars;
            const auto off = text::cp_offsets(v.s);
            for (size_t k = 0; k + 1 < off.size(); ++k) chars.push_back(Value::str(v.s.substr(off[k], off[k + 1] - off[k])));
            return chars;
        }
        case Value::Kind::Undefined: return {};
        default: throw Fault{std::string("'") + v.type_name() + "' object is not iterable"};
    }
}

namespace {

const std::string* opt_str(const Value& v, const char* fn) {
    if (v.is_none() || v.is_undefined()) return nullptr;
    if (!v.is_string()) throw Fault{std::string(fn) + " arg must be None or str"};
    return &v.s;
}

int64_t opt_int(const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    if (!v.is_integer()) throw Fault{std::string("'") + v.type_name() + "' object cannot be interpreted as an integer"};
    return v.kind == Value::Kind::Bool ? v.b : v.i;
}

Value str_list(std::vector<std::string> parts) {
    std::vector<Value> items;
    items.reserve(parts.size());
    for (auto& p : parts) items.push_back(Value::str(std::move(p)));
    return Value::make_list(std::move(items));
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
    auto one = [&](const Value& a) {
        if (!a.is_string())
            throw Fault{std::string(prefix ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " + a.type_name()};
        if (a.s.size() > s.size()) return false;
        return prefix ? s.compare(0, a.s.size(), a.s) == 0 : s.compare(s.size() - a.s.size(), a.s.size(), a.s) == 0;
    };
    if (affix.is_list()) {
        for (const auto& a : affix.list->items)
            if (one(a)) return true;
        return false;
    }
    return one(affix);
}

bool all_cps(const std::string& s, bool (*pred)(uint32_t)) {
    if (s.empty()) return false;
    for (size_t i = 0; i < s.size();)
        if (!pred(text::next_cp(s, i))) return false;
    return true;
}

// Python str methods; `self` is captured by value.
Value string_method(const Value& self, const std::string& name) {
    using Fn = Value (*)(const std::string&, CallArgs&);
    static const std::pair<const char*, Fn> kMethods[] = {
        {"strip", [](const std::string& s, CallArgs& a) { a.check("strip", 1, {}); return Value::str(text::strip(s, opt_str(a.get(0, ""), "strip"), true, true)); }},
        {"lstrip", [](const std::string& s, CallArgs& a) { a.check("lstrip", 1, {}); return Value::str(text::strip(s, opt_str(a.get(0, ""), "lstrip"), true, false)); }},
        {"rstrip", [](const std::string& s, CallArgs& a) { a.check("rstrip", 1, {}); return Value::str(text::strip(s, opt_str(a.get(0, ""), "rstrip"), false, true)); }},
        {"startswith", [](const std::string& s, CallArgs& a) { a.check("startswith", 1, {}); if (a.pos.empty()) throw Fault{"startswith() takes at least 1 argument (0 given)"}; return Value::boolean(affix_match(s, a.pos[0], true)); }},
        {"endswith", [](const std::string& s, CallArgs& a) { a.check("endswith", 1, {}); if (a.pos.empty()) throw Fault{"endswith() takes at least 1 argument (0 given)"}; return Value::boolean(affix_match(s, a.pos[0], false)); }},
        {"split", [](const std::string& s, CallArgs& a) { a.check("split", 2, {"sep", "maxsplit"}); const Value sep = a.get(0, "sep"); return str_list(text::split(s, opt_str(sep, "split"), opt_int(a.get(1, "maxsplit"), -1))); }},
        {"rsplit", [](const std::string& s, CallArgs& a) { a.check("rsplit", 2, {"sep", "maxsplit"}); const Value sep = a.get(0, "sep"); return str_list(text::rsplit(s, opt_str(sep, "rsplit"), opt_int(a.get(1, "maxsplit"), -1))); }},
        {"splitlines", [](const std::string& s, CallArgs& a) { a.check("splitlines", 0, {}); return str_list(text::splitlines(s)); }},
        {"upper", [](const std::string& s, CallArgs& a) { a.check("upper", 0, {}); return Value::str(text::upper(s)); }},
        {"lower", [](const std::string& s, CallArgs& a) { a.check("lower", 0, {}); return Value::str(text::lower(s)); }},
        {"title", [](const std::string& s, CallArgs& a) { a.check("title", 0, {}); return Value::str(text::title(s)); }},
        {"capitalize", [](const std::string& s, CallArgs& a) { a.check("capitalize", 0, {}); return Value::str(text::capitalize(s)); }},
        {"replace", [](const std::string& s, CallArgs& a) {
             a.check("replace", 3, {});
             if (a.pos.size() < 2 || !a.pos[0].is_string() || !a.pos[1].is_string()) throw Fault{"replace() takes two str arguments"};
             return Value::str(text::replace(s, a.pos[0].s, a.pos[1].s, opt_int(a.get(2, ""), -1)));
         }},
        {"find", [](const std::string& s, CallArgs& a) {
             a.check("find", 1, {});
             if (a.pos.empty() || !a.pos[0].is_string()) throw Fault{"find() takes a str argument"};
             const size_t at = s.find(a.pos[0].s);
             return Value::integer(at == std::string::npos ? -1 : int64_t(text::length(std::string_view(s).substr(0, at))));
         }},
        {"count", [](const std::string& s, CallArgs& a) {
             a.check("count", 1, {});
             if (a.pos.empty() || !a.pos[0].is_string()) throw Fault{"count() takes a str argument"};
             const std::string& n = a.pos[0].s;
             if (n.empty()) return Value::integer(int64_t(text::length(s)) + 1);
             int64_t c = 0;
             for (size_t at = s.find(n); at != std::string::npos; at = s.find(n, at + n.size())) ++c;
             return Value::integer(c);
         }},
        {"join", [](const std::string& s, CallArgs& a) {
             a.check("join", 1, {});
             if (a.pos.empty()) throw Fault{"join() takes exactly one argument (0 given)"};
             std::string out;
             bool first = true;
             for (const auto& item : iterate(a.pos[0])) {
                 if (!item.is_string()) throw Fault{std::string("sequence item: expected str instance, ") + item.type_name() + " found"};
                 out += (first ? "" : s) + item.s;
                 first = false;
             }
             return Value::str(std::move(out));
         }},
        {"isdigit", [](const std::string& s, CallArgs& a) { a.check("isdigit", 0, {}); return Value::boolean(all_cps(s, [](uint32_t c) { return c >= '0' && c <= '9'; })); }},
        {"isspace", [](const std::string& s, CallArgs& a) { a.check("isspace", 0, {}); return Value::boolean(all_cps(s, text::is_space)); }},
        {"isalpha", [](const std::string& s, CallArgs& a) { a.check("isalpha", 0, {}); return Value::boolean(all_cps(s, [](uint32_t c) { return c < 0x80 && std::isalpha(int(c)) != 0; })); }},
        {"isalnum", [](const std::string& s, CallArgs& a) { a.check("isalnum", 0, {}); return Value::boolean(all_cps(s, [](uint32_t c) { return c < 0x80 && std::isalnum(int(c)) != 0; })); }},
    };
    for (const auto& [n, fn] : kMethods)
        if (name == n) {
            std::string s = self.s;
            return Value::function("str." + name, [s, fn = fn](Renderer&, CallArgs& a) { return fn(s, a); });
        }
    return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value items_of(const Dict& d) {
    std::vector<Value> items;
    for (const auto& [k, v] : d.entries) items.push_back(Value::make_list({Value::str(k), v}, true));
    return Value::make_list(std::move(items));
}

Value unsafe(const char* type, const std::string& name) {
    return Value::undefined("access to attribute '" + name + "' of '" + type + "' object is unsafe.");
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
    switch (obj.kind) {
        case Value::Kind::Dict: {
            const auto d = obj.dict;
            if (name == "get")
                return Value::function("dict.get", [d](Renderer&, CallArgs& a) {
                    a.check("get", 2, {});
                    if (a.pos.empty()) throw Fault{"get expected at least 1 argument, got 0"};
                    const Value* v = a.pos[0].is_string() ? d->find(a.pos[0].s) : nullptr;
                    return v ? *v : a.get(1, "", Value::none());
                });
            if (name == "items") return Value::function("dict.items", [d](Renderer&, CallArgs& a) { a.check("items", 0, {}); return items_of(*d); });
            if (name == "keys")
                return Value::function("dict.keys", [d](Renderer&, CallArgs& a) {
                    a.check("keys", 0, {});
                    std::vector<Value> keys;
                    for (const auto& [k, v] : d->entries) keys.push_back(Value::str(k));
                    return Value::make_list(std::move(keys));
                });
            if (name == "values")
                return Value::function("dict.values", [d](Renderer&, CallArgs& a) {
                    a.check("values", 0, {});
                    std::vector<Value> vals;
                    for (const auto& [k, v] : d->entries) vals.push_back(v);
                    return Value::make_list(std::move(vals));
                });
            if (name == "copy") return Value::function("dict.copy", [obj](Renderer&, CallArgs&) { return obj; });
            if (name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" || name == "update" || name == "fromkeys")
                return unsafe("dict", name);
            if (const Value* v = obj.dict->find(name)) return *v;
            return Value::undefined("'dict object' has no attribute '" + name + "'");
        }
        case Value::Kind::Namespace: {
            if (const Value* v = obj.dict->find(name)) return *v;
            return Value::undefined("'Namespace object' has no attribute '" + name + "'");
        }
        case Value::Kind::String: return string_method(obj, name);
        case Value::Kind::List:
            if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
                name == "reverse" || name == "sort" || name == "clear")
                return unsafe(obj.type_name(), name);
            [[fallthrough]];
        default: return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute '" + name + "'");
    }
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_dict() || obj.kind == Value::Kind::Namespace) {
        if (key.is_string()) {
            if (const Value* v = obj.dict->find(key.s)) return *v;
            return get_attr(obj, key.s);
        }
        return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute " + key.repr());
    }
    if (obj.is_generator()) return Value::undefined("'generator object' has no attribute " + key.repr());
    if ((obj.is_list() || obj.is_string()) && key.is_integer()) {
        int64_t k = key.kind == Value::Kind::Bool ? key.b : key.i;
        if (obj.is_list()) {
            const int64_t n = int64_t(obj.list->items.size());
            if (k < 0) k += n;
            if (k < 0 || k >= n) return Value::undefined(std::string(obj.type_name()) + " object has no element " + key.to_str());
            return obj.list->items[size_t(k)];
        }
        const auto off = text::cp_offsets(obj.s);
        const int64_t n = int64_t(off.size()) - 1;
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined("str object has no element " + key.to_str());
        return Value::str(obj.s.substr(off[size_t(k)], off[size_t(k) + 1] - off[size_t(k)]));
    }
    if (key.is_string()) return get_attr(obj, key.s);
    return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute " + key.repr());
}

Value get_slice(Renderer& r, const Value& obj, const Value& start, const Value& stop, const Value& step) {
    auto bound = [](const Value& v, bool& given) -> int64_t {
        given = !v.is_none();
        if (!given) return 0;
        if (!v.is_integer()) throw Fault{"slice indices must be integers or None"};
        return v.kind == Value::Kind::Bool ? v.b : v.i;
    };
    bool has_start, has_stop, has_step;
    int64_t b = bound(start, has_start), e = bound(stop, has_stop), st = bound(step, has_step);
    if (!has_step) st = 1;
    if (st == 0) throw Fault{"slice step cannot be zero"};
    std::vector<size_t> off;
    int64_t n;
    if (obj.is_generator()) throw Fault{"'generator' object is not subscriptable"};
    if (obj.is_list()) n = int64_t(obj.list->items.size());
    else if (obj.is_string()) {
        off = text::cp_offsets(obj.s);
        n = int64_t(off.size()) - 1;
    } else {
        throw Fault{std::string("'") + obj.type_name() + "' object is not subscriptable"};
    }
    // Python's slice.indices()
    auto clamp = [&](int64_t v, bool given, int64_t dflt) {
        if (!given) return dflt;
        if (v < 0) v += n;
        if (st > 0) return std::min(std::max<int64_t>(v, 0), n);
        return std::min(std::max<int64_t>(v, -1), n - 1);
    };
    b = clamp(b, has_start, st > 0 ? 0 : n - 1);
    e = clamp(e, has_stop, st > 0 ? n : -1);
    std::vector<int64_t> picks;
    for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
        r.step();
        picks.push_back(k);
    }
    if (obj.is_list()) {
        std::vector<Value> items;
        for (int64_t k : picks) items.push_back(obj.list->items[size_t(k)]);
        return Value::make_list(std::move(items), obj.list->tuple);
    }
    std::string s;
    for (int64_t k : picks) s.append(obj.s, off[size_t(k)], off[size_t(k) + 1] - off[size_t(k)]);
    return Value::str(std::move(s));
}

namespace {

// range() as Jinja2's sandbox allows it: at most 100000 items.
constexpr int64_t kMaxRange = 100000;

Value range_fn(Renderer& r, CallArgs& a) {
    a.check("range", 3, {});
    for (const auto& v : a.pos)
        if (!v.is_integer()) throw Fault{std::string("'") + v.type_name() + "' object cannot be interpreted as an integer"};
    auto iv = [](const Value& v) { return v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i; };
    int64_t start = 0, stop = 0, step = 1;
    if (a.pos.size() == 1) stop = iv(a.pos[0]);
    else if (a.pos.size() >= 2) {
        start = iv(a.pos[0]);
        stop = iv(a.pos[1]);
        if (a.pos.size() == 3) step = iv(a.pos[2]);
    } else {
        throw Fault{"range expected at least 1 argument, got 0"};
    }
    if (step == 0) throw Fault{"range() arg 3 must not be zero"};
    const double count = step > 0 ? (double(stop) - double(start)) / double(step) : (double(start) - double(stop)) / double(-step);
    if (count > double(kMaxRange)) throw Fault{"Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."};
    std::vector<Value> items;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        r.step();
        items.push_back(Value::integer(k));
    }
    return Value::make_list(std::move(items));
}

std::shared_ptr<Dict> dict_from(CallArgs& a, const char* fn) {
    auto d = std::make_shared<Dict>();
    if (a.pos.size() > 1) throw Fault{std::string(fn) + "() takes at most 1 positional argument"};
    if (!a.pos.empty()) {
        if (a.pos[0].is_dict()) {
            d->entries = a.pos[0].dict->entries;
        } else {
            for (const auto& pair : iterate(a.pos[0])) {
                if (!pair.is_list() || pair.list->items.size() != 2 || !pair.list->items[0].is_string())
                    throw Fault{std::string(fn) + "() needs a mapping or (key, value) pairs with string keys"};
                d->set(pair.list->items[0].s, pair.list->items[1]);
            }
        }
    }
    for (const auto& [k, v] : a.kw) d->set(k, v);
    return d;
}

}  // namespace

std::vector<std::pair<std::string, Value>> global_functions() {
    return {
        {"range", Value::function("range", range_fn)},
        {"namespace", Value::function("namespace", [](Renderer&, CallArgs& a) { return Value::make_namespace(dict_from(a, "namespace")); })},
        {"dict", Value::function("dict", [](Renderer&, CallArgs& a) { return Value::make_dict(dict_from(a, "dict")); })},
        {"raise_exception", Value::function("raise_exception", [](Renderer&, CallArgs& a) -> Value {
             throw Fault{a.pos.empty() ? std::string() : a.pos[0].to_str(), true};
         })},
        {"strftime_now", Value::function("strftime_now", [](Renderer&, CallArgs& a) {
             a.check("strftime_now", 1, {});
             if (a.pos.empty() || !a.pos[0].is_string()) throw Fault{"strftime_now() takes a format string"};
             const std::time_t now = std::time(nullptr);
             std::tm tm{};
             localtime_r(&now, &tm);
             char buf[512];
             const size_t n = a.pos[0].s.size() < 200 ? std::strftime(buf, sizeof buf, a.pos[0].s.c_str(), &tm) : 0;
             if (n == 0 && !a.pos[0].s.empty()) throw Fault{"strftime_now(): format too long or empty result"};
             return Value::str(std::string(buf, n));
         })},
    };
}

}  // namespace tessera::jinja
