// What templates can call: Jinja2's filters and tests that chat templates use, Python's str and dict
// methods, and the globals Hugging Face defines (range, namespace, dict, raise_exception, strftime_now).
// Each behaves as its Python original does on the values it accepts, and raises a Fault (a template error)
// on the ones it does not, rather than guessing.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/jinja/value.h"

namespace tessera::jinja {

struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;

    // Argument `index` by position or by keyword `name`, else `fallback`.
    Value get(size_t index, const char* name, Value fallback = Value::none()) const;
    // Fault when more than `max_pos` positional arguments or a keyword outside `names` was passed.
    void check(const char* fn, size_t max_pos, std::initializer_list<const char*> names) const;
};

bool is_filter(const std::string& name);
bool is_test(const std::string& name);

Value apply_filter(Renderer& r, const std::string& name, const Value& subject, CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& subject, CallArgs& args);

// obj.name: a dict's entry, a namespace's attribute, or a bound method of str/dict; undefined otherwise.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list/str index (negative from the end), dict entry; undefined when absent.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on lists and strings (each bound may be none).
Value get_slice(Renderer& r, const Value& obj, const Value& start, const Value& stop, const Value& step);

// The globals every template sees.
std::vector<std::pair<std::string, Value>> global_functions();

// The items `for` walks: a list's or tuple's items, a dict's keys, a string's characters; none for undefined.
std::vector<Value> iterate(const Value& v);

}  // namespace tessera::jinja
