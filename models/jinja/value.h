// The values a template computes with, modelled on the Python objects Jinja2 hands around (chat templates
// are written against Python's semantics: `'a' ~ none` is "aNone", `[1] == [1.0]`, `{{ [1, 'x'] }}` prints
// "[1, 'x']"). Lists and dicts are shared and immutable once built, as in Jinja2's immutable sandbox; the one
// mutable kind is namespace(), whose attributes `{% set ns.x = ... %}` assigns.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera::jinja {

struct Value;
struct Dict;
struct CallArgs;
class Renderer;

// A builtin function or a bound method or a macro: called with the renderer (for limits and macro bodies).
using NativeFn = std::function<Value(Renderer&, CallArgs&)>;
struct Callable {
    std::string name;
    NativeFn fn;
};

struct List {
    std::vector<Value> items;
    bool tuple = false;  // prints as (a, b) rather than [a, b]
    // A Python generator (what map, select, selectattr, unique, items and reverse return in Jinja2): always
    // true, no len(), not JSON, and used up by the first walk over it. `consumed` counts the items taken.
    bool generator = false;
    mutable size_t consumed = 0;
};

struct Value {
    enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };
    Kind kind = Kind::Undefined;
    bool b = false;
    bool safe = false;  // a String that is markupsafe.Markup (from |safe or |escape): `+` escapes the other side
    int64_t i = 0;
    double f = 0;
    std::string s;  // String's UTF-8 text; for Undefined, the hint used when it is misused ("'x' is undefined")
    std::shared_ptr<const List> list;
    std::shared_ptr<Dict> dict;  // Dict and Namespace (shared; only a namespace is ever changed after creation)
    std::shared_ptr<const Callable> fn;

    Value() = default;
    static Value undefined(std::string hint) {
        Value v;
        v.s = std::move(hint);
        return v;
    }
    static Value none() { return of(Kind::None); }
    static Value boolean(bool x) {
        Value v = of(Kind::Bool);
        v.b = x;
        return v;
    }
    static Value integer(int64_t x) {
        Value v = of(Kind::Int);
        v.i = x;
        return v;
    }
    static Value real(double x) {
        Value v = of(Kind::Float);
        v.f = x;
        return v;
    }
    static Value str(std::string x) {
        Value v = of(Kind::String);
        v.s = std::move(x);
        return v;
    }
    static Value make_list(std::vector<Value> items, bool tuple = false);
    static Value make_generator(std::vector<Value> items);
    static Value make_dict(std::shared_ptr<Dict> d);
    static Value make_namespace(std::shared_ptr<Dict> d);
    static Value function(std::string name, NativeFn fn);

    bool is_undefined() const { return kind == Kind::Undefined; }
    bool is_none() const { return kind == Kind::None; }
    bool is_string() const { return kind == Kind::String; }
    bool is_list() const { return kind == Kind::List; }
    bool is_generator() const { return kind == Kind::List && list->generator; }
    bool is_dict() const { return kind == Kind::Dict; }
    bool is_number() const { return kind == Kind::Bool || kind == Kind::Int || kind == Kind::Float; }
    bool is_integer() const { return kind == Kind::Bool || kind == Kind::Int; }  // Python: bool is an int

    // Python's truth value.
    bool truthy() const;
    // The Python type name, for error messages ("str", "int", "list", "dict", ...).
    const char* type_name() const;
    // str(x) as Jinja2 prints it: strings as they are, Undefined as "", the rest as Python's str()/repr().
    std::string to_str() const;
    // repr(x): strings quoted the way Python quotes them.
    std::string repr() const;

 private:
    static Value of(Kind k) {
        Value v;
        v.kind = k;
        return v;
    }
};

// An insertion-ordered string-keyed map (Python dicts keep insertion order; JSON keys are strings).
struct Dict {
    std::vector<std::pair<std::string, Value>> entries;
    const Value* find(const std::string& key) const;
    void set(const std::string& key, Value v);
};

// Python ==, and Python's ordering (throws Fault for types it cannot order, as Python raises TypeError).
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);

// A runtime error without a location yet; the renderer adds the line and column of the expression it was
// evaluating when it reaches its caller.
struct Fault {
    std::string message;
    bool raised_by_template = false;  // raise_exception(...): the template's own message
};

// Python's float repr (shortest round-trip digits; exponent form below 1e-4 and from 1e16).
std::string float_repr(double x);

}  // namespace tessera::jinja
