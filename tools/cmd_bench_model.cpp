// `tessera bench -m MODEL`: prompt processing (pp) and generation (tg) speed, with the bytes a
// generated token reads and the memory bandwidth that implies, against the bandwidth this machine
// measures in the same run (a read-sum over 4x the bytes a token reads, 256 MiB to 2 GiB). Decode is memory-bound: that fraction is the
// efficiency figure.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tools/busy_neighbour.h"
#include "tools/command.h"
#include "tools/omp_compat.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

struct Stats {
    double median = 0, min = 0, max = 0;
};

Stats stats_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    Stats s;
    s.min = v.front();
    s.max = v.back();
    const size_t n = v.size();
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

// Read bandwidth in GB/s: the best of a few passes summing `bytes` of memory with `threads` threads.
double measure_bandwidth(size_t bytes, int threads) {
    const size_t n = bytes / sizeof(double);
    std::unique_ptr<double[]> buf(new double[n]);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; ++i) buf[i] = double(i & 7);  // touch every page (first touch by the reader)
    double best = 0, sink = 0;
    for (int pass = 0; pass < 3; ++pass) {
        const auto t0 = std::chrono::steady_clock::now();
        double total = 0;
        // Eight independent sums per thread so the adds are not one dependency chain.
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();
            const size_t lo = n / size_t(nt) * size_t(t) / 8 * 8;
            const size_t hi = t == nt - 1 ? n / 8 * 8 : n / size_t(nt) * size_t(t + 1) / 8 * 8;
            double acc[8] = {};
            for (size_t i = lo; i < hi; i += 8)
                for (int j = 0; j < 8; ++j) acc[j] += buf[i + size_t(j)];
            for (double a : acc) total += a;
        }
        const double secs = seconds_since(t0);
        sink += total;
        best = std::max(best, double(bytes) / secs / 1e9);
    }
    if (sink == -1.0) std::fprintf(stderr, " ");  // keeps the sums observable
    return best;
}

std::vector<int> parse_list(const std::string& flag, const std::string& text) {
    std::vector<int> out;
    for (int32_t v : parse_ids(flag, text)) {
        if (v < 0) throw UsageError(flag + ": counts must be >= 0");
        out.push_back(v);
    }
    return out;
}

// This process's resident memory, from /proc/self/smaps (Linux; zeros elsewhere): all of it (weights repacked
// or mapped and paged in, plus everything else), and the part that is pages of the model file's mapping
// (weights read in place). Weights repacked at load are the difference: their file pages are released.
struct Resident {
    double total_mib = 0, file_mib = 0;
};

Resident resident(const std::string& model_path) {
    Resident r;
    FILE* f = std::fopen("/proc/self/smaps", "r");
    if (!f) return r;
    char* real = realpath(model_path.c_str(), nullptr);
    const std::string file = real ? real : model_path;
    std::free(real);
    bool in_file = false;
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
        unsigned long long kb = 0;
        if (std::sscanf(line, "Rss: %llu kB", &kb) == 1) {
            r.total_mib += double(kb) / 1024.0;
            if (in_file) r.file_mib += double(kb) / 1024.0;
        } else if (std::strchr(line, '-') && std::strchr(line, '-') < std::strchr(line, ' ')) {
            // A mapping's header: "start-end perms offset dev inode   path".
            std::string l(line);
            if (!l.empty() && l.back() == '\n') l.pop_back();
            in_file = l.size() >= file.size() && l.compare(l.size() - file.size(), file.size(), file) == 0;
        }
    }
    std::fclose(f);
    return r;
}

void print_resident(const char* when, const std::string& model_path) {
    const Resident r = resident(model_path);
    if (r.total_mib > 0)
        std::fprintf(stderr, "resident %s: %.1f MiB, of which %.1f MiB are pages of the model file\n", when, r.total_mib,
                     r.file_mib);
}

int bench(int argc, char** argv) {
    SessionFlags sf;
    std::string pp_list = "512", tg_list = "128", par_list = "1";
    int reps = 3, neighbours = 0;
    bool json = false, no_bw = false;
    float bw_given = 0;
    ArgParser p("bench -m", "MODEL [-p 512] [-n 128] [-r REPS] [--json] [options]",
                "Prompt processing (ppN: N tokens in one batch) and generation (tgN: N tokens one at a time)\n"
                "speeds, bytes read per generated token and the bandwidth they imply, against the measured\n"
                "memory bandwidth (read-sum over 4x the bytes a token reads, 256 MiB to 2 GiB). Random token ids;\n"
                "the cache starts empty each rep.");
    sf.add_to(p);
    p.option("-p,--n-prompt", &pp_list, "N[,N]", "prompt lengths (default 512; 0 = skip)");
    p.option("-n,--n-gen", &tg_list, "N[,N]", "generation lengths (default 128; 0 = skip)");
    p.option("-np,--parallel", &par_list, "N[,N]",
             "sequences generating together (default 1): tgN then runs N sequences of n tokens, one token of each "
             "per step in one batch (a server's continuous batching), and reports their aggregate tok/s");
    p.option("-r,--repetitions", &reps, "R", "repetitions per test (default 3)", 1, 1000);
    p.flag("--json", &json, "one JSON object per line");
    p.flag("--no-bandwidth", &no_bw, "skip the memory bandwidth measurement");
    p.option("--bandwidth-gbs", &bw_given, "GB/S",
             "compare against this bandwidth instead of measuring the host's (e.g. 4800 for an H200 with --device "
             "cuda, where the host figure means nothing)",
             0.0, 1e6);
    p.option("--neighbour", &neighbours, "N",
             "run with N other processes each keeping a core busy (started after the bandwidth measurement): "
             "the speed on a machine shared with another program",
             0, 1024);
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    const auto pps = parse_list("-p", pp_list), tgs = parse_list("-n", tg_list), pars = parse_list("-np", par_list);
    int max_par = 1;
    for (int n : pars) {
        if (n < 1) throw UsageError("-np: sequence counts must be >= 1");
        max_par = std::max(max_par, n);
    }

    ModelHandle model;
    sf.open_model(&model.m);
    int max_len = 1;
    for (int n : pps) max_len = std::max(max_len, n);
    for (int n : tgs) max_len = std::max(max_len, n);
    tessera_session_params sp = sf.params();
    if (sp.n_ctx == 0) sp.n_ctx = max_len;
    if (max_par > 1) sp.n_seq = max_par;
    SessionHandle session;
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");
    const int threads = sf.threads > 0 ? sf.threads : omp_get_num_procs();
    if (!json) print_cache_size(session.s);

    // A GPU's bandwidth is not the host's: on a device only a given figure is used.
    const bool on_host = sf.backend == "cpu" || sf.backend == "reference";
    const int n_vocab = tessera_model_n_vocab(model.m);
    const double weight_bytes = double(tessera_model_decode_bytes(model.m));
    // The buffer only needs to be well past the caches: 4x what a token reads, 256 MiB to 2 GiB.
    const size_t bw_bytes = std::clamp(size_t(4 * weight_bytes), size_t(256) << 20, size_t(2) << 30);
    const double bw = bw_given > 0 ? bw_given : (no_bw || !on_host) ? 0.0 : measure_bandwidth(bw_bytes, threads);
    const double kv_per_tok = double(tessera_session_cache_bytes_per_token(session.s));
    // The kernel level the host side runs (the whole model on "cpu", the host layers of a split).
    const char* level = tessera_cpu_level();
    const std::string cpu_level = level ? level : "?";
    char bw_text[48] = "not measured";
    if (bw > 0) std::snprintf(bw_text, sizeof bw_text, "%.1f GB/s", bw);
    if (!json)
        std::fprintf(stderr, "model %s: %.1f MiB of weights, %.1f MiB read per decoded token; bandwidth %s (%d threads); "
                     "cpu kernels %s\n",
                     sf.model.c_str(), double(tessera_model_size(model.m)) / 1048576.0, weight_bytes / 1048576.0,
                     bw_text, threads, cpu_level.c_str());

    const double repacked = double(tessera_model_repacked_bytes(model.m));
    if (!json && repacked > 0)
        std::fprintf(stderr, "%.1f MiB of those weights repacked or copied at load for the %s kernels (their file pages released)\n",
                     repacked / 1048576.0, cpu_level.c_str());
    if (!json) print_resident("after load", sf.model);

    const BusyNeighbours busy(neighbours);
    if (!json && neighbours > 0)
        std::fprintf(stderr, "with %d busy neighbour process%s\n", neighbours, neighbours == 1 ? "" : "es");

    std::srand(1234);
    auto random_ids = [&](int n) {
        std::vector<tessera_token> ids(static_cast<size_t>(n));
        for (auto& id : ids) id = std::rand() % n_vocab;
        return ids;
    };

    auto report = [&](const std::string& test, int n_tokens, const std::vector<double>& secs, bool gen) {
        std::vector<double> tps;
        for (double s : secs) tps.push_back(n_tokens / s);
        const Stats st = stats_of(tps);
        // A generated token reads every weight once plus the K/V rows before it (on average half the run).
        const double bytes = gen ? weight_bytes + kv_per_tok * (n_tokens + 1) / 2.0 : 0.0;
        const double gbs = bytes * st.median / 1e9;
        // Without a bandwidth figure (--no-bandwidth, or a device without --bandwidth-gbs) there is no fraction:
        // JSON null, and no "% of" in the text.
        char bw_json[64] = "null", frac_json[64] = "null";
        if (bw > 0) std::snprintf(bw_json, sizeof bw_json, "%.3f", bw);
        if (bw > 0 && gen) std::snprintf(frac_json, sizeof frac_json, "%.4f", gbs / bw);
        if (json) {
            std::printf("{\"test\": \"%s\", \"threads\": %d, \"neighbours\": %d, \"tokens_per_s\": %.3f, "
                        "\"tokens_per_s_min\": %.3f, \"tokens_per_s_max\": %.3f, \"reps\": %zu, \"bytes_per_token\": %.0f, "
                        "\"gb_per_s\": %.3f, "
                        "\"bandwidth_gb_per_s\": %s, \"bandwidth_fraction\": %s, \"cpu_level\": \"%s\"}\n",
                        test.c_str(), threads, neighbours, st.median, st.min, st.max, secs.size(), bytes, gbs, bw_json,
                        frac_json, cpu_level.c_str());
        } else if (gen && bw <= 0) {
            std::printf("%-8s %3d threads  %9.2f tok/s  (min %.2f, max %.2f)  %7.1f MiB/token  %6.2f GB/s\n",
                        test.c_str(), threads, st.median, st.min, st.max, bytes / 1048576.0, gbs);
        } else if (gen) {
            std::printf("%-8s %3d threads  %9.2f tok/s  (min %.2f, max %.2f)  %7.1f MiB/token  %6.2f GB/s = %4.1f %% of %.1f GB/s\n",
                        test.c_str(), threads, st.median, st.min, st.max, bytes / 1048576.0, gbs,
                        100.0 * gbs / bw, bw);
        } else {
            std::printf("%-8s %3d threads  %9.2f tok/s  (min %.2f, max %.2f)\n", test.c_str(), threads, st.median,
                        st.min, st.max);
        }
        std::fflush(stdout);
    };

    for (int n : pps) {
        if (n == 0) continue;
        std::vector<double> secs;
        for (int r = 0; r <= reps; ++r) {  // rep 0 warms up (builds the graphs, pages the weights in)
            check(tessera_session_reset(session.s), "reset");
            const auto ids = random_ids(n);
            const auto t0 = std::chrono::steady_clock::now();
            check(tessera_decode(session.s, ids.data(), n), "prompt");
            if (r > 0) secs.push_back(seconds_since(t0));
        }
        report("pp" + std::to_string(n), n, secs, false);
    }
    for (int par : pars)
        for (int n : tgs) {
            if (n == 0) continue;
            std::vector<double> secs;
            std::vector<int32_t> seqs(static_cast<size_t>(par));
            for (int s = 0; s < par; ++s) seqs[size_t(s)] = s;
            for (int r = 0; r <= reps; ++r) {
                check(tessera_session_reset(session.s), "reset");
                const auto ids = random_ids(n * par);
                const auto t0 = std::chrono::steady_clock::now();
                for (int i = 0; i < n; ++i) {
                    const tessera_token* step = &ids[size_t(i) * size_t(par)];
                    if (max_par == 1) check(tessera_decode(session.s, step, 1), "generation");
                    else check(tessera_decode_batch(session.s, step, seqs.data(), nullptr, par), "generation");
                }
                if (r > 0) secs.push_back(seconds_since(t0));
            }
            // With -np the name says how many sequences ran (tg32x4); the bytes-per-token figures hold for one.
            report("tg" + std::to_string(n) + (max_par > 1 ? "x" + std::to_string(par) : ""), n * par, secs, par == 1);
        }
    if (!json) print_resident("after the runs", sf.model);
    return 0;
}

int cmd_bench_model(int argc, char** argv) {
    return run_guarded("bench", [&] { return bench(argc, argv); });
}

RegisterBench reg("model", "a model's prompt and generation speed (bench -m MODEL)", cmd_bench_model);

}  // namespace

}  // namespace tessera::cli
