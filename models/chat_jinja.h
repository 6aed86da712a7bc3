// A model's own chat template (tokenizer.chat_template, Jinja), rendered by models/jinja the way
// Hugging Face renders it, plus what a chat front end needs around the raw rendering:
//  - system messages for templates that have no system role (they raise, or drop the text) are folded
//    into the next user message, "system\nuser", as llama.cpp does, so a --system prompt is never lost;
//  - the BOS text a template writes first and the EOS text it writes last are removed: tokenization adds
//    BOS itself, and a prompt must not end the conversation it asks to continue;
//  - the end-of-turn marker (the text the template writes right after an assistant message, "<|im_end|>",
//    "<|eot_id|>", ...) is found by rendering a probe conversation, for use as a stop string.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/chat_template.h"
#include "models/jinja/jinja.h"

namespace tessera {

class JinjaChatTemplate {
 public:
    // Parses the template; throws jinja::TemplateError (line and column) for a template it cannot read.
    JinjaChatTemplate(const std::string& source, std::string bos_token, std::string eos_token);

    // The prompt for `messages`. Throws jinja::TemplateError when the template fails on them (including its
    // own raise_exception, e.g. roles that do not alternate).
    std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
    // The raw rendering, without the system-role fold or the BOS/EOS trimming.
    std::string render_raw(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

    bool supports_system_role() const { return supports_system_; }
    // The end-of-turn marker(s) for stop strings; empty when the probe finds none.
    const std::vector<std::string>& stops() const { return stops_; }

 private:
    jinja::Template tmpl_;
    std::string bos_, eos_;
    bool supports_system_ = true;
    std::vector<std::string> stops_;
};

}  // namespace tessera
