// Chat formats: a system + user + assistant + user conversation in each family's format, written out by hand
// from the published format definitions (model cards / reference templates), and template detection.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "models/chat_channels.h"
#include "models/chat_template.h"
#include "tests/testing.h"

using namespace tessera;

namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are helpful."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "How are you?"},
};

const std::string kDsUser = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";                // <｜User｜>
const std::string kDsAsst = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";        // <｜Assistant｜>
const std::string kDsEnd = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";  // <｜end▁of▁sentence｜>

}  // namespace

TEST_CASE("chat: chatml") {
    CHECK(format_chat(ChatFormat::ChatML, kConversation, true) ==
          "<|im_start|>system\nYou are helpful.<|im_end|>\n"
          "<|im_start|>user\nHi<|im_end|>\n"
          "<|im_start|>assistant\nHello!<|im_end|>\n"
          "<|im_start|>user\nHow are you?<|im_end|>\n"
          "<|im_start|>assistant\n");
    CHECK(format_chat(ChatFormat::ChatML, {{"user", "x"}}, false) == "<|im_start|>user\nx<|im_end|>\n");
}

TEST_CASE("chat: llama2 (BOS of the first turn comes from the tokenizer)") {
    CHECK(format_chat(ChatFormat::Llama2, kConversation, true) ==
          "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST]");
    CHECK(format_chat(ChatFormat::Llama2, {{"user", "  Hi  "}}, true) == "[INST] Hi [/INST]");
}

TEST_CASE("chat: llama3") {
    CHECK(format_chat(ChatFormat::Llama3, kConversation, true) ==
          "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("chat: gemma (system text opens the first user turn)") {
    CHECK(format_chat(ChatFormat::Gemma, kConversation, true) ==
          "<start_of_turn>user\nYou are helpful.\n\nHi<end_of_turn>\n"
          "<start_of_turn>model\nHello!<end_of_turn>\n"
          "<start_of_turn>user\nHow are you?<end_of_turn>\n"
          "<start_of_turn>model\n");
}

TEST_CASE("chat: deepseek v2") {
    CHECK(format_chat(ChatFormat::DeepSeek2, kConversation, true) ==
          "You are helpful.\n\nUser: Hi\n\nAssistant: Hello!" + kDsEnd + "User: How are you?\n\nAssistant:");
}

TEST_CASE("chat: deepseek v3 / r1") {
    CHECK(format_chat(ChatFormat::DeepSeek3, kConversation, true) ==
          "You are helpful." + kDsUser + "Hi" + kDsAsst + "Hello!" + kDsEnd + kDsUser + "How are you?" + kDsAsst);
    // R1: the reasoning of earlier answers is not repeated.
    std::vector<ChatMessage> r1 = {{"user", "Q"}, {"assistant", "<think>\nhmm\n</think>\n\nA"}, {"user", "Q2"}};
    CHECK(format_chat(ChatFormat::DeepSeek3, r1, true) ==
          kDsUser + "Q" + kDsAsst + "\n\nA" + kDsEnd + kDsUser + "Q2" + kDsAsst);
}

TEST_CASE("chat: phi3 and zephyr") {
    CHECK(format_chat(ChatFormat::Phi3, kConversation, true) ==
          "<|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
          "<|user|>\nHow are you?<|end|>\n<|assistant|>\n");
    CHECK(format_chat(ChatFormat::Zephyr, kConversation, true) ==
          "<|system|>\nYou are helpful.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
          "<|user|>\nHow are you?</s>\n<|assistant|>\n");
}

TEST_CASE("chat: harmony (gpt-oss): system header, developer instructions, earlier answers on the final channel") {
    CHECK(format_chat(ChatFormat::Harmony, kConversation, true) ==
          "<|start|>system<|message|>Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must "
          "be included for every message.<|end|>"
          "<|start|>developer<|message|># Instructions\n\nYou are helpful.<|end|>"
          "<|start|>user<|message|>Hi<|end|>"
          "<|start|>assistant<|channel|>final<|message|>Hello!<|end|>"
          "<|start|>user<|message|>How are you?<|end|>"
          "<|start|>assistant");
    // <|end|> also closes the analysis message, so only <|return|> and <|call|> end the turn.
    CHECK(chat_format_stops(ChatFormat::Harmony) == std::vector<std::string>{"<|return|>", "<|call|>"});
    CHECK(chat_format_from_name("gpt-oss") == ChatFormat::Harmony);
    CHECK(detect_chat_format("{{- '<|start|>assistant<|channel|>final<|message|>' }}") == ChatFormat::Harmony);
}

TEST_CASE("chat channels: the final channel is the answer, analysis only when asked, markers split anywhere") {
    const std::string stream =
        "<|channel|>analysis<|message|>User greets. Reply.<|end|><|start|>assistant<|channel|>final<|message|>"
        "Hi there!";
    auto run = [&](bool show, size_t step) {
        ChannelFilter f(true, show);
        std::string out;
        for (size_t i = 0; i < stream.size(); i += step) out += f.push(std::string_view(stream).substr(i, step));
        return out + f.flush();
    };
    for (size_t step : {size_t(1), size_t(3), size_t(7), stream.size()}) {
        INFO("pushed " << step << " bytes at a time");
        CHECK(run(false, step) == "Hi there!");
        CHECK(run(true, step) == "[analysis] User greets. Reply.\nHi there!");
    }
    // Plain text without a header is the answer; a format without channels passes everything.
    ChannelFilter plain(true, false);
    CHECK(plain.push("Just text") + plain.flush() == "Just text");
    ChannelFilter off(false, false);
    CHECK(off.push(stream) + off.flush() == stream);
    // A body's tail that may begin an end marker is held until it is decided.
    ChannelFilter f(true, false);
    CHECK(f.push("<|channel|>final<|message|>a <|") == "a ");
    CHECK(f.push("end|>") == "");
    CHECK(f.flush() == "");
}

TEST_CASE("chat: detection from template text (matched, never executed)") {
    // Excerpts of the families' Jinja templates: only their distinctive markers matter.
    CHECK(detect_chat_format("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                             "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}") == ChatFormat::ChatML);
    CHECK(detect_chat_format("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{{ '<<SYS>>\\n' }}") ==
          ChatFormat::Llama2);
    CHECK(detect_chat_format("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                             "+ message['content'] | trim + '<|eot_id|>' %}") == ChatFormat::Llama3);
    CHECK(detect_chat_format("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
                             "'<end_of_turn>\\n' }}") == ChatFormat::Gemma);
    CHECK(detect_chat_format("{{'" + kDsUser + "' + message['content']}}{{'" + kDsAsst + "' + content + '" + kDsEnd +
                             "'}}") == ChatFormat::DeepSeek3);
    CHECK(detect_chat_format("{{ 'User: ' + message['content'] + '\\n\\n' }}{{ 'Assistant: ' + message['content'] + "
                             "eos_token }}") == ChatFormat::DeepSeek2);
    CHECK(detect_chat_format("{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + "
                             "'\\n'}}") == ChatFormat::Phi3);
    CHECK(detect_chat_format("{{ '<|user|>\\n' + message['content'] + eos_token }}{{ '<|assistant|>' }}") ==
          ChatFormat::Zephyr);
    CHECK(detect_chat_format("") == ChatFormat::Unknown);
    CHECK(detect_chat_format("{{ cycler.__init__.__globals__.os.popen('id').read() }}") == ChatFormat::Unknown);
}

TEST_CASE("chat: names, errors") {
    for (const auto& n : chat_format_names()) CHECK(chat_format_name(chat_format_from_name(n)) == n);
    CHECK(chat_format_from_name("deepseek-r1") == ChatFormat::DeepSeek3);
    CHECK_THROWS_WITH_AS(chat_format_from_name("nope"), doctest::Contains("chatml"), Error);
    CHECK_THROWS_WITH_AS(format_chat(ChatFormat::ChatML, {{"tool", "x"}}, true), doctest::Contains("tool"), Error);
    CHECK_THROWS_AS(format_chat(ChatFormat::Unknown, kConversation, true), Error);
    CHECK(chat_format_stops(ChatFormat::ChatML) == std::vector<std::string>{"<|im_end|>"});
}

TEST_CASE("chat: llama2 and gemma refuse a system message no user turn follows (its text had nowhere to go)") {
    // Found by fuzz_chat_template: the text was dropped from the prompt without a word.
    for (ChatFormat f : {ChatFormat::Llama2, ChatFormat::Gemma}) {
        INFO(chat_format_name(f));
        CHECK_THROWS_WITH_AS(format_chat(f, {{"user", "Hi"}, {"system", "Be brief."}}, true),
                             doctest::Contains("a system message must be followed by a user message"), Error);
        CHECK_THROWS_AS(format_chat(f, {{"system", "Be brief."}}, true), Error);
        // Followed by a user turn (even after an answer), the text is there.
        const std::string p = format_chat(f, {{"user", "Hi"}, {"assistant", "Yo"}, {"system", "Be brief."},
                                              {"user", "More"}}, true);
        CHECK(p.find("Be brief.") != std::string::npos);
    }
}

TEST_CASE("tessera chat: piped turns, greedy answer equals `tessera run` on the formatted prompt") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    // TESSERA_CLI is defined for each test file (testing::cli_path() in the shared helper library is not).
    const std::string cli = TESSERA_CLI;
    const std::string model = testing::shared_path("models/stories260K.gguf");
    // stories260K has no chat template and no chat tokens; chatml text is tokenized as plain text.
    std::string chat_out;
    REQUIRE(testing::run_command("{ printf 'Hi\\n' | " + cli + " chat -m " + model +
                                     " --template chatml --temp 0 -n 12 2>/dev/null; }",
                                 &chat_out) == 0);
    const std::string prompt = format_chat(ChatFormat::ChatML, {{"user", "Hi"}}, true);
    std::string run_out;
    // $(...) drops trailing newlines, so the prompt gets a sentinel X that ${p%X} removes again.
    REQUIRE(testing::run_command("{ p=\"$(printf '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nX')\"; "
                                     "p=\"${p%X}\"; " + cli + " run -m " + model + " -p \"$p\" --temp 0 -n 12 2>/dev/null; }",
                                 &run_out) == 0);
    CHECK(prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    CHECK(!chat_out.empty());
    CHECK(chat_out == run_out);

    // Second turn: the first turn's tokens are reused from the cache; /help and /exit are commands, and
    // nothing after /exit is read.
    std::string log;
    REQUIRE(testing::run_command("{ printf 'Hi\\n/help\\nMore\\n/exit\\nIgnored\\n' | " + cli + " chat -m " + model +
                                     " --template chatml --temp 0 -n 6 --verbose 2>&1 >/dev/null; }",
                                 &log) == 0);
    CHECK(log.find("0 reused from the cache") != std::string::npos);
    size_t second = log.find("reused from the cache", log.find("evaluated)"));
    REQUIRE(second != std::string::npos);
    size_t colon = log.rfind(':', second);
    int reused = std::atoi(log.c_str() + colon + 1);
    CHECK(reused > 10);  // the whole first turn (prompt + answer) stays cached
    CHECK(log.find("/reset") != std::string::npos);  // help text
    size_t turns = 0;
    for (size_t p = log.find("(prompt "); p != std::string::npos; p = log.find("(prompt ", p + 1)) ++turns;
    CHECK(turns == 2);
}

TEST_CASE("tessera chat: a full context refuses the turn, or drops old turns with --context-shift") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    const std::string cli = TESSERA_CLI;
    const std::string base = "{ printf 'Hi\\nMore\\nAgain\\nOnce more\\n' | " + cli + " chat -m " +
                             testing::shared_path("models/stories260K.gguf") +
                             " --template chatml --temp 0 -n 8 --ctx 128";
    // Each turn is about 50 tokens as plain text, so the third no longer fits in 128.
    std::string log, answers;
    REQUIRE(testing::run_command(base + " 2>&1 >/dev/null; }", &log) == 0);
    CHECK(log.find("context holds 128") != std::string::npos);
    REQUIRE(testing::run_command(base + " 2>/dev/null; }", &answers) == 0);
    CHECK(std::count(answers.begin(), answers.end(), '\n') >= 4);  // one line per input line, even refused ones

    log.clear();
    REQUIRE(testing::run_command(base + " --context-shift 2>&1 >/dev/null; }", &log) == 0);
    CHECK(log.find("context holds") == std::string::npos);
}
