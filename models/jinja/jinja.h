// A sandboxed Jinja template engine for chat templates (tokenizer.chat_template in GGUF files), rendering
// byte-for-byte what Hugging Face's transformers render with Python's Jinja2: trim_blocks and lstrip_blocks
// on, loop controls, raise_exception(), strftime_now(), and a tojson that keeps non-ASCII text.
//
// The template is untrusted data. Rendering only computes text: there is no file, environment or process
// access, data is immutable except namespace() objects, and loops, recursion, output size and time are
// bounded (Limits). Every failure is a TemplateError naming the line and column.
//
//   auto t = jinja::Template::parse(source);           // syntax errors here
//   std::string prompt = t.render(variables);          // runtime errors here
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/jinja/limits.h"
#include "models/jinja/value.h"

namespace tessera::jinja {

struct TemplateError : tessera::Error {
    TemplateError(const std::string& message, int line, int col, bool raised_by_template = false);
    std::string message;       // without the location
    int line, col;             // 1-based, in the template source
    bool raised_by_template;   // the template called raise_exception(message)
};

struct Node;
using Variables = std::vector<std::pair<std::string, Value>>;

class Template {
 public:
    static Template parse(const std::string& source, const Limits& limits = {});
    std::string render(const Variables& variables) const;

    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;
    ~Template();

 private:
    Template();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// JSON text <-> values (objects keep key order; numbers without a fraction or exponent are ints).
Value from_json(const std::string& json);
// Python's json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys); indent < 0 means none.
// Throws Fault for values JSON cannot hold (undefined, functions).
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);

}  // namespace tessera::jinja
