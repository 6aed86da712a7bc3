// `tessera run -m MODEL -p PROMPT`: generates text. stdout carries only the generated text,
// streamed as it comes; load time, cache size and speeds go to stderr.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/command.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

// Splits bytes into printable UTF-8 (invalid bytes become U+FFFD, never raw) and a held-back tail:
// an unfinished sequence at the end that the next token may complete.
std::string take_valid_utf8(const std::string& s, std::string* tail) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const int need = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (need < 0 || (need == 1 && c < 0xC2) || (need == 3 && c > 0xF4)) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        size_t j = 1;
        while (j <= size_t(need) && i + j < s.size() && (static_cast<unsigned char>(s[i + j]) & 0xC0) == 0x80) ++j;
        if (j == size_t(need) + 1) {
            out.append(s, i, j);
            i += j;
        } else if (i + j == s.size()) {
            break;  // unfinished at the end: hold it back
        } else {
            out += "\xEF\xBF\xBD";
            i += j;
        }
    }
    *tail = s.substr(i);
    return out;
}

// Prints generated text as it completes, holding back what could still become a stop string
// or an unfinished UTF-8 character.
class Printer {
public:
    explicit Printer(std::vector<std::string> stops) : stops_(std::move(stops)) {
        for (const auto& s : stops_) hold_ = std::max(hold_, s.size());
    }
    // Returns true when a stop string was reached (text before it printed, the rest dropped).
    bool push(const std::string& piece) {
        pending_ += piece;
        if (first_ && !pending_.empty()) {
            // The continuation's leading space is the SentencePiece word marker of its first token.
            if (pending_[0] == ' ') pending_.erase(0, 1);
            first_ = pending_.empty();
        }
        for (const auto& s : stops_) {
            const size_t at = pending_.find(s);
            if (!s.empty() && at != std::string::npos) {
                emit(pending_.substr(0, at));
                pending_.clear();
                return true;
            }
        }
        const size_t ready = pending_.size() > hold_ ? pending_.size() - hold_ : 0;
        std::string tail;
        emit(take_valid_utf8(pending_.substr(0, ready), &tail));
        pending_ = tail + pending_.substr(ready);
        return false;
    }
    void finish() {
        std::string tail;
        emit(take_valid_utf8(pending_, &tail));
        if (!tail.empty()) emit("\xEF\xBF\xBD");
        pending_.clear();
    }

private:
    void emit(const std::string& s) {
        if (s.empty()) return;
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
    }
    std::vector<std::string> stops_;
    size_t hold_ = 0;
    std::string pending_;
    bool first_ = true;
};

int run(int argc, char** argv) {
    SessionFlags sf;
    std::string prompt;
    int n_predict = 128;
    SamplerFlags sampling;
    bool ignore_eos = false;
    std::vector<std::string> stops;
    ArgParser p("run", "-m MODEL -p PROMPT [options]",
                "Generates text from PROMPT. Only the generated text goes to stdout; timings go to stderr.");
    sf.add_to(p);
    p.option("-p,--prompt", &prompt, "TEXT", "prompt (tokenized with BOS, as the model asks)");
    p.option("-n,--n-predict", &n_predict, "N", "tokens to generate (default 128)", 0, 1 << 24);
    sampling.add_to(p);
    p.repeated("--stop", &stops, "TEXT", "stop when the output contains TEXT (may be repeated)");
    p.flag("--ignore-eos", &ignore_eos, "keep generating past the end-of-sequence token");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (!p.given("--prompt")) throw UsageError("-p PROMPT is required");

    const auto t_load = std::chrono::steady_clock::now();
    ModelHandle model;
    sf.open_model(&model.m);
    SessionHandle session;
    const tessera_session_params sp = sf.params();
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

    Printer printer(stops);
    const auto t_gen = std::chrono::steady_clock::now();
    int generated = 0;
    std::vector<char> piece(256);
    for (; generated < n_predict; ++generated) {
        tessera_token tok;
        check(tessera_sample(sampler.s, session.s, &tok), "sampling");
        if (!ignore_eos && tessera_model_is_eog(model.m, tok)) break;
        size_t len = 0;
        st = tessera_token_to_piece(model.m, tok, piece.data(), piece.size(), &len);
        if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
            piece.resize(len + 1);
            st = tessera_token_to_piece(model.m, tok, piece.data(), piece.size(), &len);
        }
        check(st, "detokenizing");
        if (printer.push(std::string(piece.data(), len))) {
            ++generated;
            break;
        }
        if (generated + 1 < n_predict) check(tessera_decode(session.s, &tok, 1), "decoding");
    }
    printer.finish();
    std::fputc('\n', stdout);
    std::fflush(stdout);
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
