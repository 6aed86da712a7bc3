#include "models/chat_template.h"

#include "core/error.h"

namespace tessera {

namespace {

// DeepSeek's full-width markers: <｜User｜>, <｜Assistant｜>, <｜end▁of▁sentence｜>.
const std::string kDsUser = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";
const std::string kDsAssistant = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";
const std::string kDsEnd = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";

std::string trim(const std::string& s) {
    const char* ws = " \t\n\r\f\v";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return {};
    size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void check_role(const ChatMessage& m) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
        throw Error("chat message role '" + m.role + "' is not one of system, user, assistant");
}

const struct {
    ChatFormat f;
    const char* name;
} kNames[] = {
    {ChatFormat::ChatML, "chatml"},       {ChatFormat::Llama2, "llama2"},
    {ChatFormat::Llama3, "llama3"},       {ChatFormat::Gemma, "gemma"},
    {ChatFormat::DeepSeek2, "deepseek2"}, {ChatFormat::DeepSeek3, "deepseek3"},
    {ChatFormat::Phi3, "phi3"},           {ChatFormat::Zephyr, "zephyr"},
    {ChatFormat::Harmony, "harmony"},
};

// llama2 and gemma have no system turn: the system text goes into the next user turn. With no user turn
// after it the text would be lost, so it is refused instead.
std::string system_without_user(const char* format) {
    return std::string("chat format ") + format +
           ": a system message must be followed by a user message (the format puts the system text into the "
           "next user turn)";
}

// Llama 2 chat (Meta's reference format): the system prompt sits inside the first [INST] block, each
// answer is followed by EOS and the next turn starts with BOS. Messages are stripped.
std::string format_llama2(const std::vector<ChatMessage>& msgs) {
    std::string out, system;
    bool first_turn = true;
    for (const auto& m : msgs) {
        std::string c = trim(m.content);
        if (m.role == "system") {
            system += c;
        } else if (m.role == "user") {
            out += first_turn ? "[INST] " : "<s>[INST] ";
            if (!system.empty()) {
                out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
                system.clear();
            }
            out += c + " [/INST]";
            first_turn = false;
        } else {
            out += " " + c + " </s>";
        }
    }
    if (!system.empty()) throw Error(system_without_user("llama2"));
    return out;
}

// OpenAI's harmony format (gpt-oss): a system message naming the channels, the user's system prompt as the
// developer message's instructions, user turns, and earlier answers as final-channel messages (their
// reasoning is not sent back). The generation prompt opens an assistant message; the model writes the
// channel header itself.
std::string format_harmony(const std::vector<ChatMessage>& msgs, bool add_gen) {
    std::string system, turns;
    for (const auto& m : msgs) {
        if (m.role == "system") {
            system += (system.empty() ? "" : "\n\n") + m.content;
        } else if (m.role == "user") {
            turns += "<|start|>user<|message|>" + m.content + "<|end|>";
        } else {
            turns += "<|start|>assistant<|channel|>final<|message|>" + m.content + "<|end|>";
        }
    }
    std::string out = "<|start|>system<|message|>Reasoning: medium\n\n# Valid channels: analysis, commentary, final. "
                      "Channel must be included for every message.<|end|>";
    if (!system.empty()) out += "<|start|>developer<|message|># Instructions\n\n" + system + "<|end|>";
    out += turns;
    if (add_gen) out += "<|start|>assistant";
    return out;
}

}  // namespace

const char* chat_format_name(ChatFormat f) {
    for (const auto& n : kNames)
        if (n.f == f) return n.name;
    return "unknown";
}

std::vector<std::string> chat_format_names() {
    std::vector<std::string> v;
    for (const auto& n : kNames) v.push_back(n.name);
    return v;
}

ChatFormat chat_format_from_name(const std::string& name) {
    for (const auto& n : kNames)
        if (name == n.name) return n.f;
    if (name == "deepseek" || name == "deepseek-v2") return ChatFormat::DeepSeek2;
    if (name == "deepseek-v3" || name == "deepseek-r1") return ChatFormat::DeepSeek3;
    if (name == "gemma2" || name == "gemma3") return ChatFormat::Gemma;
    if (name == "gpt-oss") return ChatFormat::Harmony;
    std::string list;
    for (const auto& n : kNames) list += std::string(list.empty() ? "" : ", ") + n.name;
    throw Error("unknown chat template '" + name + "' (known: " + list + ")");
}

ChatFormat detect_chat_format(const std::string& t) {
    if (t.empty()) return ChatFormat::Unknown;
    if (has(t, "<|channel|>") && has(t, "<|message|>")) return ChatFormat::Harmony;
    if (has(t, "<|im_start|>")) return ChatFormat::ChatML;
    if (has(t, "[INST]")) return ChatFormat::Llama2;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return ChatFormat::Llama3;
    if (has(t, "<start_of_turn>")) return ChatFormat::Gemma;
    if (has(t, kDsUser) && has(t, kDsAssistant)) return ChatFormat::DeepSeek3;
    if (has(t, "'Assistant: ' + message['content'] + eos_token") || (has(t, "'User: '") && has(t, "'Assistant:'")))
        return ChatFormat::DeepSeek2;
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) return ChatFormat::Phi3;
    if (has(t, "<|user|>") && has(t, "<|assistant|>")) return ChatFormat::Zephyr;
    return ChatFormat::Unknown;
}

std::string format_chat(ChatFormat f, const std::vector<ChatMessage>& msgs, bool add_gen) {
    for (const auto& m : msgs) check_role(m);
    std::string out;
    switch (f) {
        case ChatFormat::ChatML:
            for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            if (add_gen) out += "<|im_start|>assistant\n";
            break;
        case ChatFormat::Llama2:
            out = format_llama2(msgs);  // the prompt always ends ready for the answer
            break;
        case ChatFormat::Llama3:
            for (const auto& m : msgs)
                out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
            if (add_gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case ChatFormat::Gemma: {
            // No system role: the system text opens the first user turn, followed by a blank line.
            std::string system;
            for (const auto& m : msgs) {
                if (m.role == "system") {
                    system += trim(m.content);
                    continue;
                }
                const bool user = m.role == "user";
                out += std::string("<start_of_turn>") + (user ? "user" : "model") + "\n";
                if (user && !system.empty()) {
                    out += system + "\n\n";
                    system.clear();
                }
                out += trim(m.content) + "<end_of_turn>\n";
            }
            if (!system.empty()) throw Error(system_without_user("gemma"));
            if (add_gen) out += "<start_of_turn>model\n";
            break;
        }
        case ChatFormat::DeepSeek2:
            for (const auto& m : msgs) {
                if (m.role == "system") out += m.content + "\n\n";
                else if (m.role == "user") out += "User: " + m.content + "\n\n";
                else out += "Assistant: " + m.content + kDsEnd;
            }
            if (add_gen) out += "Assistant:";
            break;
        case ChatFormat::DeepSeek3: {
            // System prompts come first (joined by blank lines); R1's reasoning before </think> is dropped
            // from earlier answers, as its template does.
            std::string system, turns;
            for (const auto& m : msgs) {
                if (m.role == "system") {
                    system += (system.empty() ? "" : "\n\n") + m.content;
                } else if (m.role == "user") {
                    turns += kDsUser + m.content;
                } else {
                    std::string c = m.content;
                    size_t think = c.rfind("</think>");
                    if (think != std::string::npos) c = c.substr(think + 8);
                    turns += kDsAssistant + c + kDsEnd;
                }
            }
            out = system + turns;
            if (add_gen) out += kDsAssistant;
            break;
        }
        case ChatFormat::Phi3:
            for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
            if (add_gen) out += "<|assistant|>\n";
            break;
        case ChatFormat::Zephyr:
            for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
            if (add_gen) out += "<|assistant|>\n";
            break;
        case ChatFormat::Harmony:
            out = format_harmony(msgs, add_gen);
            break;
        case ChatFormat::Unknown:
            throw Error("no chat template: the model's tokenizer.chat_template was not recognized; choose one "
                        "with --template");
    }
    return out;
}

std::vector<std::string> chat_format_stops(ChatFormat f) {
    switch (f) {
        case ChatFormat::ChatML: return {"<|im_end|>"};
        case ChatFormat::Llama2: return {"</s>"};
        case ChatFormat::Llama3: return {"<|eot_id|>"};
        case ChatFormat::Gemma: return {"<end_of_turn>"};
        case ChatFormat::DeepSeek2:
        case ChatFormat::DeepSeek3: return {kDsEnd};
        case ChatFormat::Phi3: return {"<|end|>"};
        case ChatFormat::Zephyr: return {"</s>"};
        // <|end|> closes the analysis message too, after which the final one follows: not a stop.
        case ChatFormat::Harmony: return {"<|return|>", "<|call|>"};
        case ChatFormat::Unknown: break;
    }
    return {};
}

}  // namespace tessera
