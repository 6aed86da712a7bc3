// Chat prompt formats. A GGUF file's tokenizer.chat_template is Jinja text from an untrusted file: it is
// never executed, only searched for substrings distinctive of each model family; the family's format is
// then written out here. The result is meant to be tokenized with add_special = true (the tokenizer adds
// BOS when the model wants it, so no format starts with BOS text) and parse_special = true.
#pragma once
#include <string>
#include <vector>

namespace tessera {

struct ChatMessage {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

enum class ChatFormat {
    Unknown,
    ChatML,     // <|im_start|>role\n...<|im_end|>\n  (Qwen, SmolLM, many fine-tunes)
    Llama2,     // [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s><s>[INST] ...
    Llama3,     // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    Gemma,      // <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
    DeepSeek2,  // User: ...\n\nAssistant: ...<｜end▁of▁sentence｜>
    DeepSeek3,  // <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>  (V3 and R1)
    Phi3,       // <|user|>\n...<|end|>\n<|assistant|>\n
    Zephyr,     // <|user|>\n...</s>\n<|assistant|>\n
    Harmony,    // gpt-oss: <|start|>role<|message|>...<|end|>; answers <|channel|>analysis / final (chat_channels.h)
};

const char* chat_format_name(ChatFormat f);  // "chatml", "llama2", ...
// By name (as for --template); throws tessera::Error listing the known names.
ChatFormat chat_format_from_name(const std::string& name);
std::vector<std::string> chat_format_names();
// From tokenizer.chat_template text; Unknown when nothing distinctive is found.
ChatFormat detect_chat_format(const std::string& template_text);

// The prompt for `messages`; with add_generation_prompt it ends where the assistant's answer begins.
// Throws tessera::Error for an unknown role or ChatFormat::Unknown.
std::string format_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// Text that ends an assistant turn in this format (e.g. "<|im_end|>"), for use as a stop string when a model
// writes it out as plain text instead of emitting the end-of-turn token.
std::vector<std::string> chat_format_stops(ChatFormat f);

}  // namespace tessera
