// `tessera eval -m MODEL --tokens "1 2 3" --logits-out FILE`: the logits after every token,
// n_tokens x n_vocab float32 little-endian, row-major (row i = after token i, at position i).
// --incremental feeds one token at a time through the KV cache; the logits must be the same.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

// The logits file, opened before any computing so that a path that cannot be written fails at once with
// the system's reason. Only a regular file (new or existing) is accepted: writing to a device or FIFO is
// not what --logits-out means. A failed write leaves no partial file behind.
class LogitsFile {
public:
    explicit LogitsFile(const std::string& path) : path_(path) {
        struct stat st;
        const bool existed = ::stat(path.c_str(), &st) == 0;
        if (existed && !S_ISREG(st.st_mode)) throw std::runtime_error(path + ": not a regular file");
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);  // truncated only when written
        if (fd_ < 0) throw std::runtime_error("cannot open " + path + " for writing: " + std::strerror(errno));
        created_ = !existed;
    }
    ~LogitsFile() {  // not written (an error on the way): a file made here goes again
        if (fd_ < 0) return;
        ::close(fd_);
        if (created_) ::unlink(path_.c_str());
    }
    void write(const void* data, size_t n) {
        const auto* p = static_cast<const char*>(data);
        size_t done = 0;
        int err = ::ftruncate(fd_, 0) == 0 ? 0 : errno;
        while (err == 0 && done < n) {
            const ssize_t w = ::write(fd_, p + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) err = w < 0 ? errno : EIO;
            else done += size_t(w);
        }
        if (err != 0 && ::ftruncate(fd_, 0) != 0) { /* the write's error is the one to report */ }
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0 && err == 0) err = errno;
        if (err == 0) return;
        if (created_) ::unlink(path_.c_str());
        throw std::runtime_error("writing " + path_ + " failed after " + std::to_string(done) + " of " +
                                 std::to_string(n) + " bytes: " + std::strerror(err));
    }

private:
    std::string path_;
    int fd_ = -1;
    bool created_ = false;
};

int eval(int argc, char** argv) {
    SessionFlags sf;
    std::string tokens_text, prompt, out_path;
    bool incremental = false;
    ArgParser p("eval", "-m MODEL (--tokens \"1 2 3\" | -p TEXT) --logits-out FILE [options]",
                "Writes the logits after every token: n_tokens x n_vocab float32, little-endian, row-major.");
    sf.add_to(p);
    p.option("--tokens", &tokens_text, "IDS", "token ids, space- or comma-separated");
    p.option("-p,--prompt", &prompt, "TEXT", "text to tokenize (with BOS) instead of --tokens");
    p.option("--logits-out", &out_path, "FILE", "where the logits go (required)");
    p.flag("--incremental", &incremental, "one token at a time through the cache instead of one batch");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (out_path.empty()) throw UsageError("--logits-out FILE is required");
    if (p.given("--tokens") == p.given("--prompt")) throw UsageError("give exactly one of --tokens and -p");
    LogitsFile out(out_path);

    ModelHandle model;
    sf.open_model(&model.m);
    std::vector<int32_t> ids;
    if (p.given("--tokens")) {
        ids = parse_ids("--tokens", tokens_text);
    } else {
        ids.resize(prompt.size() + 8);
        int32_t n = 0;
        check(tessera_tokenize(model.m, prompt.c_str(), int32_t(prompt.size()), 1, 0, ids.data(), int32_t(ids.size()),
                               &n),
              "tokenizing");
        ids.resize(size_t(n));
    }
    if (ids.empty()) throw UsageError("no tokens to evaluate");

    tessera_session_params sp = sf.params();
    sp.logits_all = 1;
    const int n_train = tessera_model_n_ctx_train(model.m);
    if (sp.n_ctx == 0) {
        // As run does: no further than the training context unless -c asks for it (with a warning).
        sp.n_ctx = std::max<int>(int(ids.size()), std::min(n_train, 4096));
        if (n_train > 0 && sp.n_ctx > n_train)
            throw std::runtime_error(std::to_string(ids.size()) + " tokens are more than the model's training context (" +
                                     std::to_string(n_train) + "); -c N evaluates past it");
    }
    sf.warn_past_training(model.m);
    SessionHandle session;
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");
    print_cache_size(session.s);

    const int n_vocab = tessera_model_n_vocab(model.m);
    std::vector<float> logits;
    logits.reserve(ids.size() * size_t(n_vocab));
    auto take_rows = [&] {
        const int rows = tessera_n_logit_rows(session.s);
        for (int r = 0; r < rows; ++r) {
            const float* row = tessera_get_logits(session.s, r);
            if (!row) throw std::runtime_error(tessera_last_error());
            logits.insert(logits.end(), row, row + n_vocab);
        }
    };
    const auto t0 = std::chrono::steady_clock::now();
    if (incremental) {
        for (int32_t id : ids) {
            check(tessera_decode(session.s, &id, 1), "decoding");
            take_rows();
        }
    } else {
        check(tessera_decode(session.s, ids.data(), int32_t(ids.size())), "decoding");
        take_rows();
    }
    const double secs = seconds_since(t0);

    // The host is little-endian (x86-64, aarch64), so the floats are written as they lie in memory.
    out.write(logits.data(), logits.size() * sizeof(float));
    std::fprintf(stderr, "eval: %zu tokens (%s) in %.1f ms; wrote %zu x %d logits to %s\n", ids.size(),
                 incremental ? "one at a time" : "one batch", secs * 1000.0, ids.size(), n_vocab, out_path.c_str());
    return 0;
}

int cmd_eval(int argc, char** argv) {
    return run_guarded("eval", [&] { return eval(argc, argv); });
}

RegisterCommand reg("eval", "logits for a token sequence (-m MODEL --tokens IDS --logits-out FILE)", cmd_eval);

}  // namespace

}  // namespace tessera::cli
