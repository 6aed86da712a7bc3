#include "models/chat_jinja.h"

namespace tessera {

namespace {

jinja::Value messages_value(const std::vector<ChatMessage>& msgs) {
    std::vector<jinja::Value> list;
    list.reserve(msgs.size());
    for (const auto& m : msgs) {
        auto d = std::make_shared<jinja::Dict>();
        d->set("role", jinja::Value::str(m.role));
        d->set("content", jinja::Value::str(m.content));
        list.push_back(jinja::Value::make_dict(std::move(d)));
    }
    return jinja::Value::make_list(std::move(list));
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

std::string trim_ws(const std::string& s) {
    const char* ws = " \t\n\r";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

JinjaChatTemplate::JinjaChatTemplate(const std::string& source, std::string bos_token, std::string eos_token)
    : tmpl_(jinja::Template::parse(source)), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {
    // Probes use marker texts that no template transforms (no spaces to strip, no </think> to cut).
    const std::string sys = "SystemNeedle7f3", user = "UserNeedle7f3", user2 = "UserNeedle2x9", answer = "AnswerNeedle7f3";
    try {
        supports_system_ = contains(render_raw({{"system", sys}, {"user", user}}, false), sys);
    } catch (const Error&) {
        supports_system_ = false;
    }
    // The end-of-turn marker: what follows an assistant message both when it ends the conversation and when a
    // user turn follows it (the common prefix leaves out the next turn's header).
    try {
        const std::string a = render_raw({{"user", user}, {"assistant", answer}}, false);
        const std::string b = render_raw({{"user", user}, {"assistant", answer}, {"user", user2}}, false);
        const size_t pa = a.find(answer), pb = b.find(answer);
        if (pa != std::string::npos && pb != std::string::npos) {
            const std::string ta = a.substr(pa + answer.size());
            std::string tb = b.substr(pb + answer.size());
            const size_t next_user = tb.find(user2);
            if (next_user != std::string::npos) tb.resize(next_user);
            size_t n = 0;
            while (n < ta.size() && n < tb.size() && ta[n] == tb[n]) ++n;
            const std::string marker = trim_ws(ta.substr(0, n));
            if (!marker.empty()) stops_.push_back(marker);
        }
    } catch (const Error&) {
    }
    if (stops_.empty() && !eos_.empty()) stops_.push_back(eos_);
}

std::string JinjaChatTemplate::render_raw(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    return tmpl_.render({
        {"messages", messages_value(messages)},
        {"add_generation_prompt", jinja::Value::boolean(add_generation_prompt)},
        {"bos_token", jinja::Value::str(bos_)},
        {"eos_token", jinja::Value::str(eos_)},
    });
}

std::string JinjaChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    std::vector<ChatMessage> msgs;
    if (supports_system_) {
        msgs = messages;
    } else {
        std::string pending;  // system text waiting for the next user message
        for (const auto& m : messages) {
            if (m.role == "system") {
                pending += (pending.empty() ? "" : "\n") + m.content;
                continue;
            }
            if (!pending.empty()) {
                if (m.role == "user") {
                    msgs.push_back({"user", pending + (m.content.empty() ? "" : "\n" + m.content)});
                    pending.clear();
                    continue;
                }
                msgs.push_back({"user", pending});
                pending.clear();
            }
            msgs.push_back(m);
        }
        if (!pending.empty()) msgs.push_back({"user", pending});
    }
    std::string out = render_raw(msgs, add_generation_prompt);
    if (!bos_.empty() && out.compare(0, bos_.size(), bos_) == 0) out.erase(0, bos_.size());
    if (!eos_.empty() && out.size() >= eos_.size() && out.compare(out.size() - eos_.size(), eos_.size(), eos_) == 0)
        out.resize(out.size() - eos_.size());
    return out;
}

}  // namespace tessera
