// `tessera chat -m MODEL [--system TEXT] [--chat-template NAME | --chat-template-file F] [--show-prompt]
//  [sampler flags] [--ctx N] [--threads N] [--context-shift]`: multi-turn chat. Each turn formats the whole conversation with the model's chat
// format, tokenizes it, keeps the longest prefix already in the KV cache and evaluates only the rest, so a
// turn costs about its own tokens. Answers stream to stdout (only answers go there, so piped use works: one
// user turn per input line); prompts and notices go to stderr. Ctrl-C stops the current answer, not the
// program. Everything goes through the C API: model, session, tokens, sampling, the chat format
// (tessera_chat_format), stop strings (tessera_stop_matcher) and UTF-8 hold-back (tessera_detok_stream).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "tools/command.h"
#include "tools/line_input.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) { g_interrupted = 1; }

std::vector<tessera_token> tokenize(tessera_model* m, const std::string& text, bool add_special) {
    std::vector<tessera_token> ids(text.size() + 16);
    int32_t n = 0;
    tessera_status st = tessera_tokenize(m, text.data(), int32_t(text.size()), add_special, 1, ids.data(),
                                         int32_t(ids.size()), &n);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        ids.resize(size_t(n));
        st = tessera_tokenize(m, text.data(), int32_t(text.size()), add_special, 1, ids.data(), n, &n);
    }
    check(st, "tokenizing");
    ids.resize(size_t(n));
    return ids;
}

struct ChatMessage {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

// The chat format: --chat-template NAME or the text of --chat-template-file, else the model's own
// tokenizer.chat_template, else a named format guessed from it or from the vocabulary's special tokens
// (tessera_chat_template_resolve, which warns through tessera_last_error when the model's template is
// unusable). Returns the override that later calls pass back so every turn uses the same choice, and sets
// *shown to the name to report.
std::string choose_format(tessera_model* m, const std::string& name, const std::string& file, std::string* shown) {
    std::string override_text = name;
    if (!file.empty()) {
        if (!name.empty()) throw UsageError("--chat-template and --chat-template-file exclude each other");
        std::ifstream in(file, std::ios::binary);
        if (!in) throw UsageError("--chat-template-file " + file + ": cannot read it: " + std::strerror(errno));
        std::ostringstream text;
        text << in.rdbuf();
        override_text = text.str();
        if (override_text.find("{{") == std::string::npos && override_text.find("{%") == std::string::npos)
            throw UsageError("--chat-template-file " + file + ": no Jinja tags ({{ or {%) in it");
    }
    const char* chosen = nullptr;
    const tessera_status st =
        tessera_chat_template_resolve(m, override_text.empty() ? nullptr : override_text.c_str(), &chosen);
    if (st == TESSERA_OK) {
        const char* note = tessera_last_error();
        if (override_text.empty() && note && std::strncmp(note, "warning: ", 9) == 0) std::fprintf(stderr, "%s\n", note);
        *shown = !file.empty() ? file : std::strcmp(chosen, "jinja") == 0 ? std::string("the model's template") : chosen;
        return override_text.empty() ? std::string(chosen) : override_text;
    }
    if (!override_text.empty() && st == TESSERA_ERR_INVALID_ARGUMENT)
        throw UsageError(std::string(file.empty() ? "--chat-template: " : "--chat-template-file " + file + ": ") +
                         tessera_last_error());
    if (st == TESSERA_ERR_UNSUPPORTED) throw UsageError(tessera_last_error());
    check(st, "choosing the chat format");
    return {};
}

std::string format_chat(tessera_model* m, const std::string& fmt, const std::vector<ChatMessage>& messages) {
    std::vector<tessera_chat_message> msgs;
    msgs.reserve(messages.size());
    for (const auto& msg : messages) msgs.push_back({msg.role.c_str(), msg.content.c_str()});
    std::string text(256, '\0');
    size_t needed = 0;
    tessera_status st =
        tessera_chat_format(m, msgs.data(), msgs.size(), 1, fmt.c_str(), text.data(), text.size(), &needed);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        text.resize(needed + 1);
        st = tessera_chat_format(m, msgs.data(), msgs.size(), 1, fmt.c_str(), text.data(), text.size(), &needed);
    }
    check(st, "formatting the chat");
    text.resize(needed);
    return text;
}

size_t common_prefix(const std::vector<tessera_token>& a, const std::vector<tessera_token>& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

void say(const char* fmt, const std::string& s = "") { std::fprintf(stderr, fmt, s.c_str()); }

void out(const std::string& s) {
    if (s.empty()) return;
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

int chat(int argc, char** argv) {
    SessionFlags sf;
    std::string system, template_name, template_file;
    SamplerFlags sampling;
    int n_predict = -1;
    bool context_shift = false, verbose = false, show_prompt = false, show_reasoning = false;
    ArgParser p("chat", "-m MODEL [options]",
                "Interactive chat. Type a message and Enter; /reset starts over, /exit quits, /help lists commands.\n"
                "Ctrl-C stops the current answer. On a terminal lines can be edited (arrows, Ctrl-A/E/W/U) and Up/Down\n"
                "recall earlier lines (this session's; earlier sessions' too with --history-file or\n"
                "TESSERA_CHAT_HISTORY). With stdin from a pipe each line is one user turn and only the\n"
                "answers (one per turn, each ending in a newline) go to stdout.");
    sf.add_to(p);
    p.option("--system", &system, "TEXT", "system prompt");
    p.option("--chat-template,--template", &template_name, "NAME",
             std::string("chat format instead of the model's own template: ") + tessera_chat_template_names() +
                 " (jinja = the model's template; default: the model's template, else a format guessed from it)");
    p.option("--chat-template-file", &template_file, "FILE", "a Jinja chat template to use instead of the model's");
    p.flag("--show-prompt", &show_prompt, "print each turn's rendered prompt (stderr) before the answer");
    p.flag("--show-reasoning", &show_reasoning,
           "also show channels other than the answer (gpt-oss's analysis), each marked [NAME]");
    p.option("-n,--n-predict", &n_predict, "N", "most tokens per answer; -1 = until the end of turn (default)", -1,
             1 << 24);
    sampling.add_to(p);
    p.flag("--context-shift", &context_shift,
           "when the conversation no longer fits, drop the oldest turns (the system prompt stays) instead of "
           "refusing");
    std::string history_file;
    if (const char* env = std::getenv("TESSERA_CHAT_HISTORY")) history_file = env;
    p.option("--history-file", &history_file, "FILE",
             "keep the typed lines in FILE across sessions for Up/Down (created with mode 0600; the last 1000 "
             "lines; default: $TESSERA_CHAT_HISTORY, else none: nothing is written)");
    p.flag("--verbose", &verbose, "report per turn how many prompt tokens were reused from the cache (stderr)");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    sampling.resolve_seed();
    LineInput input("> ", &g_interrupted);  // line editing and history on a terminal
    if (!history_file.empty()) {
        try {
            input.keep_history_in(history_file);  // checked before the model loads: a wrong path fails fast
        } catch (const std::runtime_error& e) {
            throw UsageError(e.what());
        }
    }

    ModelHandle model;
    sf.open_model(&model.m);
    SessionHandle session;
    const tessera_session_params sp = sf.params();
    sf.warn_past_training(model.m);
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");
    std::string fmt_shown;
    const std::string fmt = choose_format(model.m, template_name, template_file, &fmt_shown);
    const int32_t n_ctx = tessera_session_n_ctx(session.s);

    SamplerHandle sampler;
    check(tessera_sampler_create(model.m, &sampling.p, &sampler.s), "creating the sampler");

    const bool interactive = isatty(0);
    std::fprintf(stderr, "model: %s (%s, %d layers), chat format %s, context %d tokens\n", sf.model.c_str(),
                 tessera_model_arch(model.m), tessera_model_n_layer(model.m), fmt_shown.c_str(), n_ctx);
    if (interactive) say("type /help for commands; Ctrl-C stops an answer, /exit or Ctrl-D quits\n");

    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR so the prompt can react
    struct sigaction old_sa {};
    sigaction(SIGINT, &sa, &old_sa);

    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    std::vector<tessera_token> cached;  // what the session's KV cache holds, in order
    std::string line;

    for (;;) {
        LineInput::Result r = input.next(&line);
        if (r == LineInput::kInterrupted) {
            g_interrupted = 0;
            say("\n(/exit or Ctrl-D quits)\n");
            continue;
        }
        if (r == LineInput::kEof) break;
        if (line.empty()) continue;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/help") {
            say("/reset  forget the conversation (keeps the system prompt)\n/exit   quit\n/help   this text\n"
                "Ctrl-C stops the current answer.\n");
            continue;
        }
        if (line == "/reset") {
            messages.resize(system.empty() ? 0 : 1);
            check(tessera_session_reset(session.s), "resetting the session");
            cached.clear();
            say("(conversation reset)\n");
            continue;
        }
        if (line[0] == '/' && line.size() > 1 && std::isalpha(static_cast<unsigned char>(line[1]))) {
            // A mistyped command is not a message for the model.
            say("unknown command '%s' (/help lists them)\n", line.substr(0, line.find(' ')));
            if (!interactive) out("\n");  // one answer line per input line for piped use
            continue;
        }

        messages.push_back({"user", line});
        std::string prompt = format_chat(model.m, fmt, messages);
        std::vector<tessera_token> ids = tokenize(model.m, prompt, true);
        // Room for at least a short answer.
        const size_t reserve = 16;
        while (ids.size() + reserve > size_t(n_ctx) && context_shift) {
            // Drop the oldest user turn and the answer that followed it.
            auto first = std::find_if(messages.begin(), messages.end(), [](const ChatMessage& m) {
                return m.role != "system";
            });
            if (first == messages.end() || first + 1 == messages.end()) break;  // only the new turn is left
            auto last = first + 1;
            if (last != messages.end() && last->role == "assistant" && last + 1 != messages.end()) ++last;
            messages.erase(first, last);
            prompt = format_chat(model.m, fmt, messages);
            ids = tokenize(model.m, prompt, true);
        }
        if (show_prompt) std::fprintf(stderr, "--- prompt (%zu tokens) ---\n%s\n--- end of prompt ---\n", ids.size(), prompt.c_str());
        if (ids.size() + reserve > size_t(n_ctx)) {
            std::fprintf(stderr, "(the conversation needs %zu tokens but the context holds %d: %s)\n", ids.size(),
                         n_ctx, context_shift ? "this message is too long" : "/reset, or run with --context-shift");
            messages.pop_back();
            out("\n");  // keep one answer line per input line for piped use
            continue;
        }

        // Reuse the cached prefix; at least the last prompt token is evaluated to get fresh logits.
        size_t keep = std::min(common_prefix(cached, ids), ids.size() - 1);
        check(tessera_session_truncate(session.s, int32_t(keep)), "trimming the cache");
        cached.resize(keep);
        g_interrupted = 0;
        check(tessera_decode(session.s, ids.data() + keep, int32_t(ids.size() - keep)), "evaluating the prompt");
        cached.insert(cached.end(), ids.begin() + keep, ids.end());
        if (verbose)
            std::fprintf(stderr, "(prompt %zu tokens: %zu reused from the cache, %zu evaluated)\n", ids.size(), keep,
                         ids.size() - keep);
        for (size_t i = keep; i < ids.size(); ++i) check(tessera_sampler_accept(sampler.s, ids[i]), "sampler");

        StopHandle stops;
        check(tessera_stop_matcher_create_chat(model.m, fmt.c_str(), &stops.s), "stop strings");
        DetokHandle detok;
        check(tessera_detok_stream_create(model.m, &detok.d), "detokenizing");
        ChannelHandle channels;
        check(tessera_channel_filter_create(model.m, fmt.c_str(), show_reasoning ? 1 : 0, &channels.f), "channels");
        const char* piece = nullptr;
        size_t piece_len = 0;
        std::string answer;
        bool at_start = true;
        auto emit = [&](const std::string& text) {
            std::string s = text;
            if (at_start) {  // the answer's first word marker (a SentencePiece space) is not shown
                size_t b = s.find_first_not_of(' ');
                s = b == std::string::npos ? std::string() : s.substr(b);
                at_start = s.empty();
            }
            out(s);
            answer += s;
        };
        int generated = 0;
        while (n_predict < 0 || generated < n_predict) {
            if (g_interrupted) {
                say("\n(stopped)");
                break;
            }
            tessera_token tok;
            check(tessera_sample(sampler.s, session.s, &tok), "sampling");
            if (tessera_model_is_eog(model.m, tok)) break;
            ++generated;
            check(tessera_detok_stream_push(detok.d, tok, &piece, &piece_len), "detokenizing");
            check(tessera_stop_matcher_push(stops.s, piece, int64_t(piece_len), &piece, &piece_len), "stop strings");
            check(tessera_channel_filter_push(channels.f, piece, int64_t(piece_len), &piece, &piece_len), "channels");
            emit(std::string(piece, piece_len));
            if (tessera_stop_matcher_stopped(stops.s)) break;
            if (tessera_session_n_past(session.s) >= n_ctx) {
                say("\n(context full: answer cut; /reset or --context-shift)");
                break;
            }
            check(tessera_decode(session.s, &tok, 1), "decoding");
            cached.push_back(tok);
        }
        if (!tessera_stop_matcher_stopped(stops.s)) {
            check(tessera_stop_matcher_flush(stops.s, &piece, &piece_len), "stop strings");
            std::string rest(piece, piece_len);
            check(tessera_detok_stream_flush(detok.d, &piece, &piece_len), "detokenizing");
            rest += std::string(piece, piece_len);
            check(tessera_channel_filter_push(channels.f, rest.data(), int64_t(rest.size()), &piece, &piece_len),
                  "channels");
            emit(std::string(piece, piece_len));
        }
        check(tessera_channel_filter_flush(channels.f, &piece, &piece_len), "channels");
        emit(std::string(piece, piece_len));
        g_interrupted = 0;
        out("\n");
        messages.push_back({"assistant", answer});
    }
    sigaction(SIGINT, &old_sa, nullptr);
    return 0;
}

int cmd_chat(int argc, char** argv) {
    return run_guarded("chat", [&] { return chat(argc, argv); });
}

RegisterCommand reg("chat", "interactive multi-turn chat (-m MODEL [--system TEXT])", cmd_chat);

}  // namespace

}  // namespace tessera::cli
