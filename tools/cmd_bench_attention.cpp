// `tessera bench attention`: the fused attention op at long context.
//
// Decode (one query token against a cache of C entries) for each head mapping: MHA, GQA, MQA with 32
// query heads of 128, and MLA (128 heads on one 576-wide latent, v = its first 512), with and without a
// 4096 window. Decode attention is memory-bound: it reads each visible cache byte once per token, so the
// figure that matters is cache GB/s against this machine's read bandwidth, measured in the same run.
// GQA reads 4x fewer bytes than MHA for the same heads, so it should run ~4x faster; the summary prints
// that ratio.
//
// Prefill (GQA 32/8, causal) at 4K and 16K tokens: time, and the memory the op needs (the graph planner's
// peak plus the kernel's own scratch), which must grow linearly with the length, not with its square.

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "tools/args.h"
#include "tools/command.h"
#include "tools/omp_compat.h"

namespace tessera::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Mapping {
    std::string name;
    int64_t n_head, n_kv_head, d_k, d_v;
    bool v_in_k;  // MLA: v is a view of the first d_v values of each k row
};

const std::vector<Mapping>& all_mappings() {
    static const std::vector<Mapping> m = {
        {"mha", 32, 32, 128, 128, false},
        {"gqa", 32, 8, 128, 128, false},
        {"mqa", 32, 1, 128, 128, false},
        {"mla", 128, 1, 576, 512, true},
    };
    return m;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& s, int64_t lo, int64_t hi) {
    std::vector<int64_t> out;
    for (const std::string& item : split_list(s)) {
        char* end = nullptr;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        if (*end != '\0') throw UsageError(flag + ": '" + item + "' is not an integer");
        if (v < lo || v > hi)
            throw UsageError(flag + ": " + item + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        out.push_back(v);
    }
    if (out.empty()) throw UsageError(flag + ": empty list");
    return out;
}

// Read bandwidth in GB/s (1e9 bytes): the best of a few timed read-sums over a buffer of `bytes`
// (written once first so every page exists), on `threads` threads. Eight independent 64-bit partial sums
// per thread keep the loop vectorized and bound by memory, not by one add chain.
double measure_read_bandwidth(size_t bytes, int threads) {
    const size_t n = bytes / sizeof(uint64_t) / 8 * 8;
    std::vector<uint64_t> buf(n);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < int64_t(n); ++i) buf[size_t(i)] = uint64_t(i) * 0x9E3779B97F4A7C15ull;
    const uint64_t* p = buf.data();
    double best = 0;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 4; ++rep) {
        const auto t0 = Clock::now();
        uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            uint64_t acc[8] = {};
#pragma omp for schedule(static)
            for (int64_t i = 0; i < int64_t(n); i += 8)
                for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
            for (int j = 0; j < 8; ++j) total += acc[j];
        }
        sink = sink + total;
        best = std::max(best, double(n * sizeof(uint64_t)) / seconds_since(t0) / 1e9);
    }
    return best;
}

// A cache tensor [d, n_kv_head, n_ctx] of `type` in its own backend buffer, filled with random values.
// Rows repeat every 64 (filling 512 MiB with fresh random numbers would take longer than the benchmark);
// the attention reads every byte either way.
Tensor* make_cache(Context& ctx, Backend& be, std::vector<std::unique_ptr<Buffer>>& keep, DType type, int64_t d,
                   int64_t n_kv_head, int64_t n_ctx, uint64_t seed, const char* name) {
    Tensor* t = ctx.new_tensor(type, {d, n_kv_head, n_ctx}, name);
    keep.push_back(be.alloc_buffer(t->nbytes()));
    t->buffer = keep.back().get();
    t->data = keep.back()->base();
    const size_t row = row_bytes(type, d);
    constexpr int64_t kPattern = 64;
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(d));
    std::vector<uint8_t> pattern(row * kPattern);
    for (int64_t r = 0; r < kPattern; ++r) {
        for (float& x : values) x = dist(rng);
        type_traits(type).from_float(values.data(), pattern.data() + size_t(r) * row, d);
    }
    const int64_t rows = n_kv_head * n_ctx;
    constexpr int64_t kChunkRows = 1 << 14;  // copy through a staging block so device backends work too
    std::vector<uint8_t> stage(row * kChunkRows);
    for (int64_t r = 0; r < kChunkRows; ++r)
        std::memcpy(stage.data() + size_t(r) * row, pattern.data() + size_t(r % kPattern) * row, row);
    for (int64_t r0 = 0; r0 < rows; r0 += kChunkRows) {
        const int64_t nr = std::min(kChunkRows, rows - r0);
        be.set_tensor(*t, stage.data(), size_t(r0) * row, size_t(nr) * row);
    }
    return t;
}

void set_leaf(Backend& be, std::vector<std::unique_ptr<Buffer>>& keep, Tensor* t, const void* src) {
    keep.push_back(be.alloc_buffer(t->nbytes()));
    t->buffer = keep.back().get();
    t->data = keep.back()->base();
    be.set_tensor(*t, src, 0, t->nbytes());
}

Tensor* make_f32(Context& ctx, Backend& be, std::vector<std::unique_ptr<Buffer>>& keep,
                 std::initializer_list<int64_t> ne, uint64_t seed) {
    Tensor* t = ctx.new_tensor(DType::F32, ne);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(size_t(t->nelements()));
    for (float& x : v) x = dist(rng);
    set_leaf(be, keep, t, v.data());
    return t;
}

Tensor* make_positions(Context& ctx, Backend& be, std::vector<std::unique_ptr<Buffer>>& keep, int64_t first,
                       int64_t n) {
    Tensor* t = ctx.new_tensor(DType::I32, {n});
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) p[size_t(i)] = int32_t(first + i);
    set_leaf(be, keep, t, p.data());
    return t;
}

double process_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct RunTime {
    double wall_s;  // per run
    double cpu_s;   // process CPU time per run, all threads (includes OpenMP's spin-waits)
};

// Times graph runs: one warm-up, then runs until both `min_reps` and `min_s` are reached (at most 200).
// CPU time beside wall time: on a machine shared with other work, wall time includes waiting for a core;
// with --threads 1, CPU time is the kernel's own cost.
RunTime time_per_run(Backend& be, const Graph& g, int min_reps, double min_s) {
    be.compute(g);
    int reps = 0;
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    do {
        be.compute(g);
        ++reps;
    } while ((reps < min_reps || seconds_since(t0) < min_s) && reps < 200);
    return {seconds_since(t0) / reps, (process_cpu_seconds() - c0) / reps};
}

struct DecodeResult {
    std::string mapping;
    int64_t context, window;
    double ms, cpu_ms;
};

int cmd_bench_attention(int argc, char** argv) {
    std::string contexts_s = "1024,4096,16384,32768", mappings_s = "mha,gqa,mqa,mla", windows_s = "0,4096";
    std::string prefill_s = "4096,16384", cache_s = "f16", backend_name = "cpu";
    int threads = 0, bw_mib = 1024;
    float min_time = 0.3f, bw_given = 0;
    bool json = false, no_decode = false, no_prefill = false;

    ArgParser p("bench attention", "[options]",
                "Decode time per token, KV bytes read per token and GB/s of the attention op for each head\n"
                "mapping and context, against this machine's read bandwidth measured in the same run; prefill\n"
                "time and peak memory at long prompts.");
    p.option("--contexts", &contexts_s, "LIST", "decode context lengths (default 1024,4096,16384,32768)");
    p.option("--mappings", &mappings_s, "LIST", "head mappings: mha, gqa, mqa, mla (default all)");
    p.option("--windows", &windows_s, "LIST", "sliding windows to run, 0 = none (default 0,4096)");
    p.option("--prefill", &prefill_s, "LIST", "prefill lengths, GQA 32/8 causal (default 4096,16384)");
    p.option("--cache-type", &cache_s, "TYPE", "KV cache type: f16, f32 or q8_0 (default f16)");
    p.option("--backend,--device", &backend_name, "NAME", "backend: cpu (default), reference, cuda");
    p.option("-t,--threads", &threads, "N", "threads (default: physical cores)", 0, 1024);
    p.option("--bandwidth-gbs", &bw_given, "GB/S",
             "compare against this bandwidth instead of measuring the host's (needed for --backend cuda, e.g. 4800)",
             0.0, 1e6);
    p.option("--bw-mib", &bw_mib, "MIB", "buffer for the bandwidth measurement (default 1024)", 64, 16384);
    p.option("--min-time", &min_time, "S", "seconds to time each decode case at least (default 0.3)", 0.0, 60.0);
    p.flag("--no-decode", &no_decode, "skip the decode cases");
    p.flag("--no-prefill", &no_prefill, "skip the prefill cases");
    p.flag("--json", &json, "one JSON object per line instead of tables");
    if (!p.parse(argc, argv)) return 0;

    const std::vector<int64_t> contexts = parse_int_list("--contexts", contexts_s, 1, int64_t(1) << 24);
    const std::vector<int64_t> windows = parse_int_list("--windows", windows_s, 0, INT32_MAX);
    const std::vector<int64_t> prefills = no_prefill ? std::vector<int64_t>{} : parse_int_list("--prefill", prefill_s, 1, int64_t(1) << 20);
    std::vector<Mapping> mappings;
    for (const std::string& name : split_list(mappings_s)) {
        auto it = std::find_if(all_mappings().begin(), all_mappings().end(), [&](const Mapping& m) { return m.name == name; });
        if (it == all_mappings().end()) throw UsageError("--mappings: unknown mapping '" + name + "' (mha, gqa, mqa, mla)");
        mappings.push_back(*it);
    }
    const DType cache = type_from_name(cache_s);
    if (cache != DType::F32 && cache != DType::F16 && cache != DType::Q8_0)
        throw UsageError("--cache-type: " + cache_s + " is not a cache type (f16, f32, q8_0)");
    auto backend = create_backend(backend_name, BackendOptions{threads, 0, ""});
    threads = backend->threads();

    // Other processes compete for the same cores and memory: the load average says how much, so a reader can
    // tell a slow machine from a slow kernel.
    double load1 = 0;
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%lf", &load1) != 1) load1 = 0;
        std::fclose(f);
    }
    // A device's memory is not the host's: there the figure to compare against must be given.
    const double bandwidth =
        bw_given > 0 ? bw_given : backend->is_host() ? measure_read_bandwidth(size_t(bw_mib) << 20, threads) : 0.0;
    if (json) {
        std::printf("{\"bench\":\"attention\",\"kind\":\"bandwidth\",\"threads\":%d,\"buffer_mib\":%d,\"gb_per_s\":%.2f,"
                    "\"load_average\":%.2f,\"cpu_level\":\"%s\"}\n",
                    threads, bw_mib, bandwidth, load1, backend->kernel_level().c_str());
    } else {
        const std::string level = backend->kernel_level();
        std::printf("attention on %s%s%s%s, %d threads, %s cache; read bandwidth (read-sum over %d MiB): %.1f GB/s; "
                    "load average %.2f\n\n",
                    backend_name.c_str(), level.empty() ? "" : " (", level.c_str(), level.empty() ? "" : " kernels)",
                    threads, type_name(cache), bw_mib, bandwidth, load1);
    }
    std::fflush(stdout);

    std::vector<DecodeResult> results;
    if (!no_decode) {
        if (!json)
            std::printf("decode (1 query token)\n%-5s %5s %6s %5s %5s %8s %6s %10s %10s %12s %9s %7s\n", "map",
                        "heads", "kv", "d_k", "d_v", "context", "window", "ms/token", "cpu ms", "KV MB/token", "GB/s",
                        "of bw");
        const int64_t max_ctx = *std::max_element(contexts.begin(), contexts.end());
        for (const Mapping& m : mappings) {
            // one cache per mapping at the longest context; shorter contexts are views of its first entries
            Context ctx;
            std::vector<std::unique_ptr<Buffer>> keep;
            Tensor* k = make_cache(ctx, *backend, keep, cache, m.d_k, m.n_kv_head, max_ctx, 1, "k");
            Tensor* v = m.v_in_k ? k : make_cache(ctx, *backend, keep, cache, m.d_v, m.n_kv_head, max_ctx, 2, "v");
            Tensor* k_pos_all = make_positions(ctx, *backend, keep, 0, max_ctx);
            Tensor* q = make_f32(ctx, *backend, keep, {m.d_k, m.n_head, 1}, 3);
            for (int64_t c : contexts) {
                for (int64_t w : windows) {
                    Tensor* kv = view(ctx, k, {m.d_k, m.n_kv_head, c, 1}, {k->nb[0], k->nb[1], k->nb[2], k->nb[3]}, 0);
                    Tensor* vv = view(ctx, v, {m.d_v, m.n_kv_head, c, 1}, {v->nb[0], v->nb[1], v->nb[2], v->nb[3]}, 0);
                    Tensor* kp = view_1d(ctx, k_pos_all, c, 0);
                    Tensor* qp = make_positions(ctx, *backend, keep, c - 1, 1);
                    AttentionSpec spec;
                    spec.scale = 1.0f / std::sqrt(float(m.v_in_k ? 192 : m.d_k));
                    spec.window = int32_t(w);
                    Tensor* out = attention(ctx, q, kv, vv, qp, kp, spec);
                    Graph g;
                    g.expand(out);
                    auto buf = allocate_graph(g, *backend);
                    const RunTime rt = time_per_run(*backend, g, 3, min_time);
                    const double s = rt.wall_s;
                    // bytes the token must read: the visible entries' k rows (and v rows unless v is inside k)
                    const int64_t visible = w > 0 ? std::min(c, w) : c;
                    const double kv_bytes = double(visible) * double(m.n_kv_head) *
                                            double(row_bytes(cache, m.d_k) + (m.v_in_k ? 0 : row_bytes(cache, m.d_v)));
                    const double gbs = kv_bytes / s / 1e9;
                    results.push_back({m.name, c, w, s * 1e3, rt.cpu_s * 1e3});
                    if (json) {
                        std::printf("{\"bench\":\"attention\",\"kind\":\"decode\",\"mapping\":\"%s\",\"n_head\":%lld,"
                                    "\"n_kv_head\":%lld,\"d_k\":%lld,\"d_v\":%lld,\"cache_type\":\"%s\",\"context\":%lld,"
                                    "\"window\":%lld,\"threads\":%d,\"ms_per_token\":%.4f,\"cpu_ms_per_token\":%.4f,"
                                    "\"kv_bytes_per_token\":%.0f,\"gb_per_s\":%.2f,\"bandwidth_gb_per_s\":%.2f}\n",
                                    m.name.c_str(), (long long)m.n_head, (long long)m.n_kv_head, (long long)m.d_k,
                                    (long long)m.d_v, type_name(cache), (long long)c, (long long)w, threads, s * 1e3,
                                    rt.cpu_s * 1e3, kv_bytes, gbs, bandwidth);
                    } else {
                        std::printf("%-5s %5lld %6lld %5lld %5lld %8lld %6lld %10.3f %10.3f %12.2f %9.1f %6.0f%%\n",
                                    m.name.c_str(), (long long)m.n_head, (long long)m.n_kv_head, (long long)m.d_k,
                                    (long long)m.d_v, (long long)c, (long long)w, s * 1e3, rt.cpu_s * 1e3,
                                    kv_bytes / 1e6, gbs, bandwidth > 0 ? 100.0 * gbs / bandwidth : 0.0);
                    }
                    std::fflush(stdout);
                }
            }
        }
        // the grouping check: GQA 32/8 reads a quarter of MHA's bytes, so it should take ~1/4 of the time
        if (!json) {
            std::map<std::pair<int64_t, int64_t>, const DecodeResult*> mha, gqa;
            for (const auto& r : results) {
                if (r.mapping == "mha") mha[{r.context, r.window}] = &r;
                if (r.mapping == "gqa") gqa[{r.context, r.window}] = &r;
            }
            bool header = false;
            for (const auto& [key, a] : mha) {
                auto it = gqa.find(key);
                if (it == gqa.end()) continue;
                if (!header) std::printf("\nMHA / GQA-8 time ratio (bytes ratio 4.0):\n"), header = true;
                std::printf("  context %6lld window %5lld: %.2fx wall, %.2fx cpu\n", (long long)key.first,
                            (long long)key.second, a->ms / it->second->ms, a->cpu_ms / it->second->cpu_ms);
            }
        }
    }

    if (!prefills.empty() && !json)
        std::printf("\nprefill (GQA 32/8, head dim 128, causal)\n%7s %10s %12s %14s %14s %14s %18s\n", "tokens", "s",
                    "GFLOP/s", "planner MiB", "scratch MiB", "peak MiB", "n x n scores MiB");
    for (int64_t n : prefills) {
        const Mapping& m = all_mappings()[1];
        Context ctx;
        std::vector<std::unique_ptr<Buffer>> keep;
        Tensor* k = make_cache(ctx, *backend, keep, cache, m.d_k, m.n_kv_head, n, 4, "k");
        Tensor* v = make_cache(ctx, *backend, keep, cache, m.d_v, m.n_kv_head, n, 5, "v");
        Tensor* q = make_f32(ctx, *backend, keep, {m.d_k, m.n_head, n}, 6);
        Tensor* qp = make_positions(ctx, *backend, keep, 0, n);
        Tensor* kp = make_positions(ctx, *backend, keep, 0, n);
        AttentionSpec spec;
        spec.scale = 1.0f / std::sqrt(float(m.d_k));
        Tensor* out = attention(ctx, q, k, v, qp, kp, spec);
        Graph g;
        g.expand(out);
        size_t planner_peak = 0;
        auto buf = allocate_graph(g, *backend, &planner_peak);
        const size_t scratch = backend->scratch_bytes(*out);
        // A device's first run pays for library and kernel loading; time the second.
        if (!backend->is_host()) backend->compute(g);
        const auto t0 = Clock::now();
        backend->compute(g);
        const double s = seconds_since(t0);
        // causal: n (n + 1) / 2 (query, key) pairs per head, each a d_k dot and a d_v axpy (2 flops per element)
        const double flops = double(n) * double(n + 1) / 2 * double(m.n_head) * 2.0 * double(m.d_k + m.d_v);
        const double scores_bytes = double(n) * double(n) * double(m.n_head) * 4.0;
        if (json) {
            std::printf("{\"bench\":\"attention\",\"kind\":\"prefill\",\"mapping\":\"gqa\",\"n_head\":%lld,\"n_kv_head\":%lld,"
                        "\"d_k\":%lld,\"d_v\":%lld,\"cache_type\":\"%s\",\"tokens\":%lld,\"threads\":%d,\"seconds\":%.3f,"
                        "\"gflop_per_s\":%.1f,\"planner_peak_bytes\":%zu,\"scratch_bytes\":%zu,\"peak_bytes\":%zu,"
                        "\"score_matrix_bytes\":%.0f}\n",
                        (long long)m.n_head, (long long)m.n_kv_head, (long long)m.d_k, (long long)m.d_v, type_name(cache),
                        (long long)n, threads, s, flops / s / 1e9, planner_peak, scratch, planner_peak + scratch,
                        scores_bytes);
        } else {
            std::printf("%7lld %10.2f %12.1f %14.1f %14.2f %14.1f %18.0f\n", (long long)n, s, flops / s / 1e9,
                        planner_peak / 1048576.0, scratch / 1048576.0, (planner_peak + scratch) / 1048576.0,
                        scores_bytes / 1048576.0);
        }
        std::fflush(stdout);
    }
    if (!prefills.empty() && !json)
        std::printf("(peak = the planner's buffer, here the [128, 32, n] output, plus the kernel's scratch: linear in n;\n"
                    " the last column is what materializing the scores would take)\n");
    return 0;
}

int run(int argc, char** argv) {
    return run_guarded("bench attention", [&] { return cmd_bench_attention(argc, argv); });
}

RegisterBench reg("attention", "fused attention: decode ms/token and GB/s per head mapping, prefill memory", run);

}  // namespace

}  // namespace tessera::cli
