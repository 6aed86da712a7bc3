// Golden-case plumbing shared by the golden tests (llama, gemma, deepseek, the later families, IQ4):
// the manifest's cases, token / logits files, llama.cpp's argmax rule, running a model through a
// Session in one batch, one token at a time or in chunks, and through `tessera eval`. Header-only so every test binary
// can include it without touching the test CMake setup.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "models/session.h"
#include "tests/testing.h"

namespace tessera::testing::golden {

inline std::string shared_file(const std::string& rel) { return shared_path(rel); }
inline bool have_shared() {
    struct stat st;
    return stat(shared_path("golden/manifest.json").c_str(), &st) == 0;
}

// Whether ../shared/golden/extra (the later families' and IQ4 cases) is there; says so when it is not.
inline bool have_extra() {
    struct stat st;
    if (stat(shared_path("golden/extra/manifest.json").c_str(), &st) == 0) return true;
    MESSAGE("skipped: ../shared/golden/extra is missing");
    return false;
}

struct Case {
    std::string name, arch, weight_type, gguf, tokens, logits;
    int64_t n_tokens = 0, n_vocab = 0;
    double tol_rel_rms = 0, argmax_min_agree = 0;
    double llamacpp_batch_vs_incremental = 0;  // llama.cpp's own disagreement, max abs
};

// A flat field of one manifest object ("key": value), without a JSON library.
inline std::string field(const std::string& obj, const std::string& key) {
    const std::string pat = "\"" + key + "\":";
    size_t p = obj.find(pat);
    if (p == std::string::npos) return "";
    p += pat.size();
    while (p < obj.size() && obj[p] == ' ') ++p;
    if (p < obj.size() && obj[p] == '"') {
        const size_t e = obj.find('"', p + 1);
        return obj.substr(p + 1, e - p - 1);
    }
    size_t e = p;
    while (e < obj.size() && obj[e] != ',' && obj[e] != '\n' && obj[e] != '}') ++e;
    return obj.substr(p, e - p);
}

// The cases of one manifest: golden/manifest.json, or golden/extra/manifest.json with dir "golden/extra".
inline std::vector<Case> load_manifest(const std::string& dir = "golden") {
    const auto bytes = read_file(shared_file(dir + "/manifest.json"));
    const std::string text(bytes.begin(), bytes.end());
    std::vector<Case> cases;
    size_t p = 0;
    while ((p = text.find("\"name\":", p)) != std::string::npos) {
        const size_t e = text.find("\"name\":", p + 1);
        const std::string obj = text.substr(p, (e == std::string::npos ? text.size() : e) - p);
        Case c;
        c.name = field(obj, "name");
        c.arch = field(obj, "architecture");
        c.weight_type = field(obj, "weight_type");
        c.gguf = shared_file(dir + "/" + field(obj, "gguf"));
        c.tokens = shared_file(dir + "/" + field(obj, "tokens"));
        c.logits = shared_file(dir + "/" + field(obj, "logits"));
        c.n_tokens = std::stoll(field(obj, "n_tokens"));
        c.n_vocab = std::stoll(field(obj, "n_vocab"));
        c.tol_rel_rms = std::stod(field(obj, "tolerance_rel_rms"));
        c.argmax_min_agree = std::stod(field(obj, "argmax_min_agree"));
        const std::string bi = field(obj, "llamacpp_batch_vs_incremental_max_abs");
        c.llamacpp_batch_vs_incremental = bi.empty() || bi == "null" ? 0.0 : std::stod(bi);
        cases.push_back(c);
        p = e == std::string::npos ? text.size() : e;
    }
    return cases;
}

// The cases whose architecture is one of `archs`.
inline std::vector<Case> cases_for(std::initializer_list<const char*> archs, const std::string& dir = "golden") {
    std::vector<Case> out;
    for (auto& c : load_manifest(dir))
        for (const char* a : archs)
            if (c.arch == a) out.push_back(c);
    return out;
}

inline std::vector<int32_t> read_tokens(const std::string& path) {
    std::ifstream in(path);
    std::vector<int32_t> ids;
    int32_t id;
    while (in >> id) ids.push_back(id);
    return ids;
}

inline std::vector<float> read_f32(const std::string& path) {
    const auto bytes = read_file(path);
    std::vector<float> v(bytes.size() / 4);
    std::memcpy(v.data(), bytes.data(), v.size() * 4);
    return v;
}

inline int argmax_row(const float* row, int64_t n) { return int(std::max_element(row, row + n) - row); }

// The README's argmax rule: among rows whose top-1/top-2 gap exceeds 5 % of the top logit,
// the fraction where our argmax equals llama.cpp's.
inline double argmax_agreement(const std::vector<float>& got, const std::vector<float>& want, int64_t n_vocab) {
    const int64_t rows = int64_t(want.size()) / n_vocab;
    int64_t counted = 0, agree = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const float* w = want.data() + r * n_vocab;
        std::vector<float> sorted(w, w + n_vocab);
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
        if (sorted[0] - sorted[1] <= 0.05f * std::fabs(sorted[0])) continue;
        ++counted;
        agree += argmax_row(got.data() + r * n_vocab, n_vocab) == argmax_row(w, n_vocab);
    }
    return counted ? double(agree) / double(counted) : 1.0;
}

struct RunOptions {
    DType cache = DType::F32;
    bool incremental = false;      // one token per decode() call
    std::string backend = "cpu";
    int64_t n_batch = 512;         // prefill chunk size (batch mode)
    int64_t n_ctx = 512;
    std::function<void(const Session&)> inspect;  // called once, after the last decode
};

// Logits for every token (rows in order) of `ids` through a fresh Session.
inline std::vector<float> run_logits(const Model& model, const std::vector<int32_t>& ids, const RunOptions& o) {
    SessionOptions so;
    so.n_ctx = o.n_ctx;
    so.n_threads = 2;
    so.n_batch = o.n_batch;
    so.cache_type = o.cache;
    so.backend = o.backend;
    so.logits_all = true;
    Session s(model, so);
    std::vector<float> out;
    const int64_t nv = model.hparams().n_vocab;
    if (o.incremental) {
        for (int32_t id : ids) {
            s.decode(&id, 1);
            out.insert(out.end(), s.logits(0), s.logits(0) + nv);
        }
    } else {
        s.decode(ids.data(), int64_t(ids.size()));
        for (int64_t r = 0; r < s.n_logit_rows(); ++r) out.insert(out.end(), s.logits(r), s.logits(r) + nv);
    }
    if (o.inspect) o.inspect(s);
    return out;
}

// rel_rms within tol and the argmax rule; prints the figures either way.
inline void check_case(const Case& c, const std::vector<float>& got, const std::vector<float>& want, double tol,
                       const std::string& mode) {
    INFO(c.name << " (" << mode << ")");
    REQUIRE(got.size() == want.size());
    const double rr = rel_rms(got, want);
    const double agree = argmax_agreement(got, want, c.n_vocab);
    MESSAGE(c.name << " " << mode << ": rel_rms " << rr << " (tol " << tol << "), argmax agreement " << agree);
    CHECK(rr <= tol);
    CHECK(agree >= c.argmax_min_agree);
}

// The case's tokens through `model` with options `o`, against its logits at tolerance `tol`.
inline void check_run(const Model& model, const Case& c, const RunOptions& o, double tol, const std::string& mode) {
    check_case(c, run_logits(model, read_tokens(c.tokens), o), read_f32(c.logits), tol, mode);
}

// The golden run's own setting (F32 cache) in one batch, one token at a time and, when chunk > 0, in
// prefill chunks of `chunk` tokens, at the manifest's tolerance; the files' sizes checked first. `where`
// (a cpu level, say) is added to each run's label.
inline void check_batch_incremental(const Model& model, const Case& c, int64_t chunk = 0, const std::string& where = "") {
    const auto ids = read_tokens(c.tokens);
    const auto want = read_f32(c.logits);
    REQUIRE(int64_t(ids.size()) == c.n_tokens);
    REQUIRE(int64_t(want.size()) == c.n_tokens * c.n_vocab);
    const std::string at = where.empty() ? "" : ", " + where;
    RunOptions o;
    check_case(c, run_logits(model, ids, o), want, c.tol_rel_rms, "batch" + at);
    o.incremental = true;
    check_case(c, run_logits(model, ids, o), want, c.tol_rel_rms, "incremental" + at);
    if (chunk > 0) {
        o.incremental = false;
        o.n_batch = chunk;
        check_case(c, run_logits(model, ids, o), want, c.tol_rel_rms, "chunks of " + std::to_string(chunk) + at);
    }
}

// `tessera eval` as a subprocess on the case, batch and --incremental, F32 cache, at the manifest's tolerance.
inline void check_cli_eval(const Case& c) {
    std::string toks;
    for (int32_t id : read_tokens(c.tokens)) toks += (toks.empty() ? "" : " ") + std::to_string(id);
    for (const char* mode : {"", " --incremental"}) {
        const std::string out = "/tmp/tessera_golden_eval_" + std::to_string(::getpid()) + ".f32";
        const std::string cmd = cli_path() + " eval -m " + c.gguf + " --tokens \"" + toks + "\" --logits-out " + out +
                                " --cache-type f32 --threads 2" + mode;
        std::string log;
        const int rc = run_command(cmd, &log);
        INFO(cmd << "\n" << log);
        REQUIRE(rc == 0);
        check_case(c, read_f32(out), read_f32(c.logits), c.tol_rel_rms, mode[0] ? "cli incremental" : "cli batch");
        std::remove(out.c_str());
    }
}

}  // namespace tessera::testing::golden
