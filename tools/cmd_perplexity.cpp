// `tessera perplexity -m MODEL -f TEXT [-c N]`: perplexity the way llama.cpp's llama-perplexity computes it,
// so the figures compare with published ones. The text is tokenized whole (with BOS), cut into chunks of N
// tokens; each chunk runs from an empty cache with its first token replaced by BOS; the first half of the
// chunk is context and each token of the second half is scored by the logits of the position before it.
//
// --kl-divergence-base FILE keeps the base model's log-probabilities of every scored position (with the
// tokens and the chunk size); --kl-divergence then runs another model (say a quantized one) over the same
// tokens and reports how far its distributions are from the base's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "tools/command.h"
#include "tools/perplexity_math.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

using ppl::KlPosition;
using ppl::MeanError;
using ppl::Perplexity;

// The base-logits file: magic, version, n_vocab, n_ctx, n_chunks, then n_chunks * n_ctx token ids (int32),
// then for each chunk the log-softmax rows (float32, n_vocab each) of its scored positions. Little-endian.
constexpr char kKlMagic[8] = {'T', 'S', 'R', 'K', 'L', 'D', 'B', '\0'};
constexpr uint32_t kKlVersion = 1;

struct KlHeader {
    uint32_t n_vocab = 0, n_ctx = 0, n_chunks = 0;
};

int scored_per_chunk(int n_ctx) { return n_ctx - 1 - n_ctx / 2; }

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw std::runtime_error("reading " + path + " failed");
    return s.str();
}

std::vector<int32_t> tokenize_all(tessera_model* model, const std::string& text) {
    if (text.size() > size_t(INT32_MAX)) throw std::runtime_error("the text is over 2 GiB");
    int32_t n = 0;
    std::vector<int32_t> ids(text.size() + 16);
    tessera_status s = tessera_tokenize(model, text.data(), int32_t(text.size()), 1, 0, ids.data(),
                                        int32_t(ids.size()), &n);
    if (s == TESSERA_ERR_BUFFER_TOO_SMALL) {
        ids.resize(size_t(n));
        s = tessera_tokenize(model, text.data(), int32_t(text.size()), 1, 0, ids.data(), int32_t(ids.size()), &n);
    }
    check(s, "tokenizing the text");
    ids.resize(size_t(n));
    return ids;
}

class FileOut {
public:
    explicit FileOut(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
        if (!f_) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
    ~FileOut() {
        if (f_) std::fclose(f_);
    }
    void write(const void* data, size_t bytes) {
        if (std::fwrite(data, 1, bytes, f_) != bytes)
            throw std::runtime_error("writing " + path_ + " failed: " + std::strerror(errno));
    }
    void close() {
        FILE* f = f_;
        f_ = nullptr;
        if (std::fclose(f) != 0) throw std::runtime_error("writing " + path_ + " failed: " + std::strerror(errno));
    }

private:
    std::string path_;
    FILE* f_;
};

class FileIn {
public:
    explicit FileIn(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "rb")) {
        if (!f_) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
    }
    ~FileIn() { std::fclose(f_); }
    void read(void* data, size_t bytes) {
        if (std::fread(data, 1, bytes, f_) != bytes)
            throw std::runtime_error(path_ + ": the file ends early (not a complete --kl-divergence-base file)");
    }
    const std::string& path() const { return path_; }
    // The size of a regular file; false for what has none (a pipe, say).
    bool regular_size(uint64_t* bytes) const {
        struct stat st;
        if (fstat(fileno(f_), &st) != 0 || !S_ISREG(st.st_mode)) return false;
        *bytes = uint64_t(st.st_size);
        return true;
    }

private:
    std::string path_;
    FILE* f_;
};

KlHeader read_kl_header(FileIn& in, std::vector<int32_t>* tokens) {
    char magic[8];
    uint32_t version = 0;
    KlHeader h;
    in.read(magic, 8);
    if (std::memcmp(magic, kKlMagic, 8) != 0)
        throw std::runtime_error(in.path() + ": not a file written by `tessera perplexity --kl-divergence-base`");
    in.read(&version, 4);
    if (version != kKlVersion) throw std::runtime_error(in.path() + ": unsupported version " + std::to_string(version));
    in.read(&h.n_vocab, 4);
    in.read(&h.n_ctx, 4);
    in.read(&h.n_chunks, 4);
    if (h.n_vocab == 0 || h.n_vocab > (1u << 24) || h.n_ctx < 4 || h.n_ctx > (1u << 24) || h.n_chunks == 0 ||
        uint64_t(h.n_chunks) * h.n_ctx > (1ull << 31))
        throw std::runtime_error(in.path() + ": header values out of range");
    // What the header promises must be in the file before memory is taken for it: a damaged header would
    // otherwise ask for up to 8 GiB of token ids.
    const uint64_t promised = 8 + 4 * 4 + uint64_t(h.n_chunks) * h.n_ctx * 4 +
                              uint64_t(h.n_chunks) * uint64_t(scored_per_chunk(int(h.n_ctx))) * h.n_vocab * 4;
    uint64_t size = 0;
    if (in.regular_size(&size) && size != promised)
        throw std::runtime_error(in.path() + ": " + std::to_string(size) + " bytes, but its header (" +
                                 std::to_string(h.n_chunks) + " chunks of " + std::to_string(h.n_ctx) + ", " +
                                 std::to_string(h.n_vocab) + " tokens in the vocabulary) promises " +
                                 std::to_string(promised) + " (a damaged or truncated --kl-divergence-base file)");
    tokens->resize(size_t(h.n_chunks) * h.n_ctx);
    in.read(tokens->data(), tokens->size() * sizeof(int32_t));
    return h;
}

// What the KL comparison collects over every scored position.
struct KlStats {
    MeanError kl, delta_p, same_top;
    std::vector<double> kls, delta_ps;
    Perplexity base_ppl;
    MeanError log_ratio;  // ln p_base(token) - ln p_other(token), averaged: ln(PPL(other)/PPL(base))

    void add(const KlPosition& r, double base_log_p, double other_log_p) {
        kl.add(r.kl);
        delta_p.add(r.delta_p);
        same_top.add(r.same_top ? 1.0 : 0.0);
        kls.push_back(r.kl);
        delta_ps.push_back(r.delta_p);
        base_ppl.add_token(base_log_p);
        log_ratio.add(base_log_p - other_log_p);
    }

    void print(const Perplexity& other_ppl) {
        std::sort(kls.begin(), kls.end());
        std::sort(delta_ps.begin(), delta_ps.end());
        std::printf("\n====== KL divergence statistics (%lld positions) ======\n", (long long)kl.count);
        std::printf("PPL(base)             %10.4f +/- %.5f\n", base_ppl.value(), base_ppl.error());
        std::printf("PPL(this)             %10.4f +/- %.5f\n", other_ppl.value(), other_ppl.error());
        std::printf("ln(PPL(this)/PPL(base)) %8.6f +/- %.6f\n", log_ratio.mean(), log_ratio.error());
        std::printf("Mean    KLD           %10.6f +/- %.6f\n", kl.mean(), kl.error());
        const double qs[] = {1.0, 0.999, 0.99, 0.95, 0.90, 0.5, 0.10, 0.05, 0.01, 0.001, 0.0};
        const char* names[] = {"Maximum", "99.9%", "99.0%", "95.0%", "90.0%", "Median",
                               "10.0%",   "5.0%",  "1.0%",  "0.1%",  "Minimum"};
        for (int i = 0; i < 11; ++i) std::printf("%-7s KLD           %10.6f\n", names[i], ppl::percentile(kls, qs[i]));
        std::printf("\nMean    delta p       %9.3f %% +/- %.3f %%\n", 100.0 * delta_p.mean(), 100.0 * delta_p.error());
        std::printf("RMS     delta p       %9.3f %%\n",
                    100.0 * std::sqrt(delta_p.sum_sq / double(std::max<int64_t>(1, delta_p.count))));
        for (int i = 0; i < 11; ++i)
            std::printf("%-7s delta p       %9.3f %%\n", names[i], 100.0 * ppl::percentile(delta_ps, qs[i]));
        std::printf("\nSame top token        %9.3f %% +/- %.3f %%\n", 100.0 * same_top.mean(),
                    100.0 * same_top.error());
    }
};

int perplexity(int argc, char** argv) {
    SessionFlags sf;
    std::string text_path, kl_base_path;
    bool kl_compare = false;
    int chunks_limit = -1;
    ArgParser p("perplexity", "-m MODEL -f TEXT [-c N] [options]",
                "Perplexity over a text, computed as llama.cpp's llama-perplexity does: chunks of -c tokens (default "
                "512), each starting with BOS from an empty cache, the second half of each chunk scored.\n"
                "With --kl-divergence-base FILE the log-probabilities are also saved; a later run with "
                "--kl-divergence-base FILE --kl-divergence compares another model (a quantized one) against them.");
    sf.add_to(p);
    p.option("-f,--file", &text_path, "TEXT", "the text to score (not needed with --kl-divergence)");
    p.option("--chunks", &chunks_limit, "N", "score at most N chunks (default: all)", 1, INT32_MAX);
    p.option("--kl-divergence-base", &kl_base_path, "FILE",
             "where the base log-probabilities are written (or, with --kl-divergence, read from)");
    p.flag("--kl-divergence", &kl_compare, "compare this model against the --kl-divergence-base file");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (kl_compare && kl_base_path.empty()) throw UsageError("--kl-divergence needs --kl-divergence-base FILE");
    if (!kl_compare && text_path.empty()) throw UsageError("-f TEXT is required");

    // Open every file before the long computation, so a bad path fails at once.
    std::unique_ptr<FileIn> kl_in;
    std::unique_ptr<FileOut> kl_out;
    std::vector<int32_t> tokens;
    KlHeader header;
    if (kl_compare) {
        kl_in = std::make_unique<FileIn>(kl_base_path);
        header = read_kl_header(*kl_in, &tokens);
        if (p.given("--ctx") && uint32_t(sf.ctx) != header.n_ctx)
            throw UsageError("-c " + std::to_string(sf.ctx) + " differs from the base file's chunk size " +
                             std::to_string(header.n_ctx));
    }
    std::string text;
    if (!text_path.empty()) text = read_text_file(text_path);
    if (!kl_compare && !kl_base_path.empty()) kl_out = std::make_unique<FileOut>(kl_base_path);

    ModelHandle model;
    sf.open_model(&model.m);
    const int n_vocab = tessera_model_n_vocab(model.m);
    int n_ctx;
    if (kl_compare) {
        if (uint32_t(n_vocab) != header.n_vocab)
            throw std::runtime_error(kl_base_path + ": the base model has " + std::to_string(header.n_vocab) +
                                     " tokens in its vocabulary, this one " + std::to_string(n_vocab));
        n_ctx = int(header.n_ctx);
        if (!text.empty() && tokenize_all(model.m, text).size() < tokens.size())
            throw std::runtime_error("-f " + text_path + " gives fewer tokens than the base file holds");
    } else {
        n_ctx = sf.ctx > 0 ? sf.ctx : 512;
        if (n_ctx < 4) throw UsageError("-c must be at least 4 for perplexity");
        tokens = tokenize_all(model.m, text);
    }
    const int64_t n_chunks_max = int64_t(tokens.size()) / n_ctx;
    if (n_chunks_max < 1 || (!kl_compare && int64_t(tokens.size()) < 2 * int64_t(n_ctx)))
        throw std::runtime_error(text_path + " gives " + std::to_string(tokens.size()) +
                                 " tokens; perplexity with chunks of " + std::to_string(n_ctx) + " needs at least " +
                                 std::to_string(2 * n_ctx));
    const int64_t n_chunks = chunks_limit > 0 ? std::min<int64_t>(chunks_limit, n_chunks_max) : n_chunks_max;
    if (kl_compare && n_chunks > int64_t(header.n_chunks)) throw std::logic_error("chunk count above the header's");

    tessera_session_params sp = sf.params();
    sp.logits_all = 1;
    sp.n_ctx = n_ctx;
    SessionHandle session;
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");

    const tessera_token bos = tessera_model_bos(model.m);
    const bool add_bos = bos >= 0 && !tokens.empty() && tokens[0] == bos;
    const int first = n_ctx / 2;
    const int scored = scored_per_chunk(n_ctx);
    if (kl_out) {
        const uint32_t fields[4] = {kKlVersion, uint32_t(n_vocab), uint32_t(n_ctx), uint32_t(n_chunks)};
        kl_out->write(kKlMagic, 8);
        kl_out->write(fields, sizeof fields);
        kl_out->write(tokens.data(), size_t(n_chunks) * size_t(n_ctx) * sizeof(int32_t));
    }
    std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %d (%d scored in each)%s\n", tokens.size(),
                 (long long)n_chunks, n_ctx, scored, add_bos ? ", each starting with BOS" : "");

    Perplexity ppl_total;
    KlStats kl_stats;
    std::vector<float> log_probs(size_t(scored) * size_t(n_vocab)), base_log_probs(log_probs.size());
    const auto t_start = std::chrono::steady_clock::now();
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        if (add_bos) chunk[0] = bos;
        check(tessera_session_reset(session.s), "clearing the cache");
        check(tessera_decode(session.s, chunk.data(), n_ctx), "decoding");
        if (kl_in) kl_in->read(base_log_probs.data(), base_log_probs.size() * sizeof(float));
        for (int i = 0; i < scored; ++i) {
            const int pos = first + i;  // logits at pos predict the token at pos + 1
            const float* logits = tessera_get_logits(session.s, pos);
            if (!logits) throw std::runtime_error(tessera_last_error());
            const int next = tokens[size_t(c * n_ctx + pos + 1)];
            float* row = log_probs.data() + size_t(i) * size_t(n_vocab);
            ppl::log_softmax(logits, n_vocab, row);
            ppl_total.add_token(row[next]);
            if (kl_in) {
                const float* base_row = base_log_probs.data() + size_t(i) * size_t(n_vocab);
                kl_stats.add(ppl::compare_position(base_row, row, n_vocab, next), base_row[next], row[next]);
            }
        }
        if (kl_out) kl_out->write(log_probs.data(), log_probs.size() * sizeof(float));
        const double secs = seconds_since(t0);
        std::fprintf(stderr, "[%lld/%lld] PPL %.4f  (%.2f s per chunk)\n", (long long)(c + 1), (long long)n_chunks,
                     ppl_total.value(), secs);
    }
    if (kl_out) kl_out->close();
    const double total = seconds_since(t_start);
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl_total.value(), ppl_total.error());
    std::fprintf(stderr, "perplexity: %lld chunks in %.2f s (%.3f s per chunk)%s%s\n", (long long)n_chunks, total,
                 total / double(n_chunks), kl_out ? "; base log-probabilities written to " : "",
                 kl_out ? kl_base_path.c_str() : "");
    if (kl_in) kl_stats.print(ppl_total);
    return 0;
}

int cmd_perplexity(int argc, char** argv) {
    return run_guarded("perplexity", [&] { return perplexity(argc, argv); });
}

RegisterCommand reg("perplexity", "perplexity of a text, and KL divergence against a base model (-m MODEL -f TEXT)",
                    cmd_perplexity);

}  // namespace

}  // namespace tessera::cli
