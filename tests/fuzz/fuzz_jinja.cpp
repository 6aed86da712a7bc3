// libFuzzer target for the chat-template engine (models/jinja): any input is a template; it must either
// render or fail with jinja::TemplateError, within its limits. A crash, sanitizer report, leak, hang, any
// other exception, or an output over the limit is a finding. The template renders against a small
// conversation with tools, so loops, filters and tool-call paths are reachable.
// Built and run by tests/fuzz/run.sh with FUZZ_TARGET=jinja (`make fuzz-jinja`).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "models/jinja/jinja.h"

using namespace tessera::jinja;

namespace {

const Variables& variables() {
    static const Variables vars = {
        {"messages", from_json(R"([{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hi\nthere 日本"},
                                   {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function",
                                     "function": {"name": "f", "arguments": {"x": 1}}}]},
                                   {"role": "tool", "content": "{\"ok\": true}", "tool_call_id": "call12345"},
                                   {"role": "user", "content": "  again  "}])")},
        {"tools", from_json(R"([{"type": "function", "function": {"name": "f", "description": "d",
                                 "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}])")},
        {"add_generation_prompt", Value::boolean(true)},
        {"bos_token", Value::str("<s>")},
        {"eos_token", Value::str("</s>")},
    };
    return vars;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Limits limits;
    limits.max_steps = 200000;  // small bounds keep each input fast; the bounds themselves are under test
    limits.max_output_bytes = 1 << 20;
    limits.max_seconds = 2.0;
    const std::string source(reinterpret_cast<const char*>(data), size);
    try {
        const std::string out = Template::parse(source, limits).render(variables());
        if (out.size() > limits.max_output_bytes) {
            std::fprintf(stderr, "fuzz_jinja: output of %zu bytes passed the limit\n", out.size());
            std::abort();
        }
    } catch (const TemplateError&) {
    }
    return 0;
}
