// libFuzzer target for chat templates: arbitrary template text through the family matcher
// (detect_chat_format) and through the Jinja engine the model's own template is rendered with
// (JinjaChatTemplate). A crash, sanitizer report, hang past libFuzzer's timeout, or an exception other than
// tessera::Error / jinja::TemplateError is a finding.
//
// Input: the template text, then (after a 0 byte, when there is one) messages separated by 0 bytes, whose
// first byte picks the role. Promises checked:
//  - detection never throws; a detected format renders the messages (or refuses them with tessera::Error),
//    and every message's text appears in it (without surrounding whitespace: llama3 and gemma trim it, as
//    their templates do);
//  - a template that parses renders or throws jinja::TemplateError; nothing else escapes.
// Built and run by tests/fuzz/run.sh (`make fuzz FUZZ_TARGET=chat_template`).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/chat_jinja.h"
#include "models/chat_template.h"

using namespace tessera;

namespace {

std::string trimmed(const std::string& s) {
    const char* ws = " \t\n\r\f\v";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

[[noreturn]] void broken(const std::string& what) {
    std::fprintf(stderr, "fuzz_chat_template: promise broken: %s\n", what.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const size_t cut = input.find('\0');
    const std::string source = input.substr(0, cut);
    std::vector<ChatMessage> messages;
    if (cut != std::string::npos) {
        static const char* roles[] = {"system", "user", "assistant", "user"};
        size_t at = cut + 1;
        while (at < input.size() && messages.size() < 8) {
            size_t end = input.find('\0', at);
            if (end == std::string::npos) end = input.size();
            const std::string part = input.substr(at, end - at);
            if (!part.empty()) messages.push_back({roles[uint8_t(part[0]) % 4], part.substr(1)});
            at = end + 1;
        }
    }
    if (messages.empty()) messages.push_back({"user", "hello"});

    ChatFormat f = ChatFormat::Unknown;
    try {
        f = detect_chat_format(source);
    } catch (const std::exception& e) {
        broken(std::string("detect_chat_format threw: ") + e.what());
    }
    if (f != ChatFormat::Unknown) {
        std::string prompt;
        try {
            prompt = format_chat(f, messages, true);
        } catch (const Error&) {
            // roles the format cannot place are refused with a message: allowed
        }
        if (!prompt.empty())
            for (const auto& m : messages)
                if (prompt.find(trimmed(m.content)) == std::string::npos)
                    broken(std::string(chat_format_name(f)) + ": a message's text is missing from the prompt");
    }

    try {
        JinjaChatTemplate t(source, "<s>", "</s>");
        (void)t.apply(messages, true);
        (void)t.render_raw(messages, false);
    } catch (const jinja::TemplateError&) {
    } catch (const Error&) {
    }
    return 0;
}
