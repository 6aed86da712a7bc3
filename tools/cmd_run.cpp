// `tessera run -m MODEL -p PROMPT`: generates text. stdout carries only the generated text,
// streamed as it comes; load time, cache size and speeds go to stderr.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tools/command.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

std::string read_stdin() {
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
    if (std::ferror(stdin)) throw std::runtime_error(std::string("reading the prompt from stdin: ") + std::strerror(errno));
    return text;
}

// Prints generated text as it completes. The library's streaming detokenizer holds back an unfinished
// UTF-8 character (invalid bytes become U+FFFD), its stop matcher whatever could still become a stop string:
// the same two pieces tessera chat uses.
class Printer {
public:
    Printer(const tessera_model* model, const std::vector<std::string>& stops) {
        std::vector<const char*> texts;
        for (const std::string& s : stops)
            if (!s.empty()) texts.push_back(s.c_str());  // an empty stop string stops nothing
        check(tessera_stop_matcher_create(texts.data(), int32_t(texts.size()), &stops_.s), "stop strings");
        check(tessera_detok_stream_create(model, &detok_.d), "detokenizing");
    }
    // Returns true when a stop string was reached (text before it printed, the rest dropped).
    bool push(tessera_token token) {
        const char* text = nullptr;
        size_t len = 0;
        check(tessera_detok_stream_push(detok_.d, token, &text, &len), "detokenizing");
        check(tessera_stop_matcher_push(stops_.s, text, int64_t(len), &text, &len), "stop strings");
        emit(std::string(text, len));
        return tessera_stop_matcher_stopped(stops_.s) != 0;
    }
    void finish() {
        if (tessera_stop_matcher_stopped(stops_.s)) return;
        const char* text = nullptr;
        size_t len = 0;
        check(tessera_stop_matcher_flush(stops_.s, &text, &len), "stop strings");
        std::string rest(text, len);
        check(tessera_detok_stream_flush(detok_.d, &text, &len), "detokenizing");
        emit(rest + std::string(text, len));
    }

private:
    void emit(std::string s) {
        if (first_ && !s.empty()) {
            // The continuation's leading space is the SentencePiece word marker of its first token.
            if (s[0] == ' ') s.erase(0, 1);
            first_ = s.empty();
        }
        if (s.empty()) return;
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
    }
    StopHandle stops_;
    DetokHandle detok_;
    bool first_ = true;
};

int run(int argc, char** argv) {
    SessionFlags sf;
    std::string prompt, prompt_file;
    int n_predict = 128;
    SamplerFlags sampling;
    bool ignore_eos = false;
    std::vector<std::string> stops;
    ArgParser p("run", "-m MODEL -p PROMPT [options]",
                "Generates text from PROMPT. Only the generated text goes to stdout; timings go to stderr.");
    sf.add_to(p);
    p.option("-p,--prompt", &prompt, "TEXT", "prompt (tokenized with BOS, as the model asks); - reads stdin");
    p.option("-f,--file", &prompt_file, "FILE", "read the prompt from FILE");
    p.option("-n,--n-predict,--predict", &n_predict, "N",
             "tokens to generate (default 128); -1 = until the end of text or the context is full", -1, 1 << 24);
    sampling.add_to(p);
    p.repeated("--stop", &stops, "TEXT", "stop when the output contains TEXT");
    p.flag("--ignore-eos", &ignore_eos, "keep generating past the end-of-sequence token");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (p.given("--prompt") == p.given("--file")) throw UsageError("give the prompt with one of -p TEXT and -f FILE");
    if (p.given("--file")) prompt = read_text_file("-f", prompt_file);
    else if (prompt == "-") prompt = read_stdin();
    sampling.resolve_seed();

    const auto t_load = std::chrono::steady_clock::now();
    ModelHandle model;
    sf.open_model(&model.m);
    SessionHandle session;
    const tessera_session_params sp = sf.params();
    sf.warn_past_training(model.m);
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");
    std::fprintf(stderr, "model: %s (%s, %d layers, n_embd %d, vocab %d), loaded in %.0f ms\n", sf.model.c_str(),
                 tessera_model_arch(model.m), tessera_model_n_layer(model.m), tessera_model_n_embd(model.m),
                 tessera_model_n_vocab(model.m), seconds_since(t_load) * 1000.0);
    print_cache_size(session.s);

    std::vector<tessera_token> ids(prompt.size() + 8);
    int32_t n_ids = 0;
    tessera_status st = tessera_tokenize(model.m, prompt.c_str(), int32_t(prompt.size()), 1, 0, ids.data(),
                                         int32_t(ids.size()), &n_ids);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        ids.resize(size_t(n_ids));
        st = tessera_tokenize(model.m, prompt.c_str(), int32_t(prompt.size()), 1, 0, ids.data(), n_ids, &n_ids);
    }
    check(st, "tokenizing the prompt");
    ids.resize(size_t(n_ids));
    if (ids.empty()) throw UsageError("the prompt gives no tokens");

    SamplerHandle sampler;
    check(tessera_sampler_create(model.m, &sampling.p, &sampler.s), "creating the sampler");
    for (tessera_token t : ids) check(tessera_sampler_accept(sampler.s, t), "sampler");

    const auto t_prompt = std::chrono::steady_clock::now();
    check(tessera_decode(session.s, ids.data(), int32_t(ids.size())), "evaluating the prompt");
    const double prompt_s = seconds_since(t_prompt);

    Printer printer(model.m, stops);
    const auto t_gen = std::chrono::steady_clock::now();
    const int32_t n_ctx = tessera_session_n_ctx(session.s);
    bool context_full = false;
    int generated = 0;
    for (; n_predict < 0 || generated < n_predict; ++generated) {
        tessera_token tok;
        check(tessera_sample(sampler.s, session.s, &tok), "sampling");
        if (!ignore_eos && tessera_model_is_eog(model.m, tok)) break;
        if (printer.push(tok)) {
            ++generated;
            break;
        }
        if (n_predict >= 0 && generated + 1 >= n_predict) continue;  // the last token needs no decode
        if (tessera_session_n_past(session.s) >= n_ctx) {  // no room to run this token: stop here, cleanly
            context_full = true;
            ++generated;
            break;
        }
        check(tessera_decode(session.s, &tok, 1), "decoding");
    }
    printer.finish();
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (context_full)
        std::fprintf(stderr, "(context full: stopped after %d tokens at the context's %d; -c sets it)\n", generated,
                     n_ctx);
    const double gen_s = seconds_since(t_gen);
    std::fprintf(stderr, "prompt: %zu tokens in %.1f ms (%.1f tok/s); generated: %d tokens in %.1f ms (%.1f tok/s)\n",
                 ids.size(), prompt_s * 1000.0, double(ids.size()) / std::max(prompt_s, 1e-9), generated,
                 gen_s * 1000.0, generated / std::max(gen_s, 1e-9));
    return 0;
}

int cmd_run(int argc, char** argv) {
    return run_guarded("run", [&] { return run(argc, argv); });
}

RegisterCommand reg("run", "generate text from a prompt (-m MODEL -p PROMPT)", cmd_run);

}  // namespace

}  // namespace tessera::cli
