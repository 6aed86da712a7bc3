// Bounds on one template: a template is untrusted input, so parsing and rendering stop with an error long
// before they could exhaust memory or time. The defaults leave real chat templates (a few KiB of source,
// a conversation of thousands of turns) far from every bound.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::jinja {

struct Limits {
    size_t max_source_bytes = size_t(1) << 20;   // template text
    size_t max_output_bytes = size_t(64) << 20;  // rendered text, and any one string or list built on the way
    int max_nesting = 128;                       // parse depth (brackets, nested blocks) and macro call depth
    uint64_t max_steps = 50'000'000;             // statements + loop iterations + calls
    double max_seconds = 10.0;                   // wall time for one render
};

}  // namespace tessera::jinja
