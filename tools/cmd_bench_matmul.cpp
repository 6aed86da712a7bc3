// `tessera bench matmul`: GFLOP/s of mul_mat on the cpu backend for each weight type, at decode (m = 1)
// and prefill (m = 512) shapes, with 1 and 2 threads; beside them this machine's FMA peak (from the clock
// in /proc/cpuinfo) and its memory bandwidth measured in the same run (a read-sum over a large buffer), so
// each figure is also a ratio: prefill against peak, decode's weight bytes per second against bandwidth.

#include <time.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
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

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Wall time of one run and the CPU time all this process's threads spent in it. On a shared machine the
// wall figure includes waiting for a core; work per CPU-second is the kernel's own efficiency.
struct Timing {
    double wall = 0, cpu = 0;
};

// Times f: one warm-up when a run is quick, then up to `reps` runs within about `budget_s`; medians.
// `before` runs ahead of every run, untimed.
template <class F, class B>
Timing time_median(F&& f, int reps, double budget_s, B&& before) {
    before();
    auto t0 = Clock::now();
    double c0 = process_cpu_seconds();
    f();
    const double first = seconds_since(t0), first_cpu = process_cpu_seconds() - c0;
    std::vector<double> walls, cpus;
    if (first > 0.5) {  // slow case: the first run counts, no separate warm-up
        walls.push_back(first);
        cpus.push_back(first_cpu);
    }
    const int n = std::max(1, std::min(reps, int(budget_s / std::max(first, 1e-9))));
    for (int i = int(walls.size()); i < n; ++i) {
        before();
        t0 = Clock::now();
        c0 = process_cpu_seconds();
        f();
        walls.push_back(seconds_since(t0));
        cpus.push_back(process_cpu_seconds() - c0);
    }
    return {median(walls), median(cpus)};
}

template <class F>
Timing time_median(F&& f, int reps, double budget_s) {
    return time_median(f, reps, budget_s, [] {});
}

// Reads a buffer larger than the last-level cache, so the next run finds its weights in DRAM: a decode
// product whose weights fit in L3 (q4_0 4096 x 4096 is 9 MiB) would otherwise be timed from cache.
void evict_caches(const std::vector<float>& big) {
    float s = 0;
    for (size_t i = 0; i < big.size(); i += 16) s += big[i];  // one load per 64-byte line
    volatile float sink = s;
    (void)sink;
}

// The 1-minute load average: how busy the machine was (a figure taken while it exceeds the core
// count measures the scheduler as much as the kernel).
double load_average() {
    std::ifstream in("/proc/loadavg");
    double l = 0;
    in >> l;
    return l;
}

// The clock in MHz from /proc/cpuinfo's first "cpu MHz" line (0 if absent).
double cpu_mhz() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("cpu MHz", 0) == 0) return std::atof(line.c_str() + line.find(':') + 1);
    return 0.0;
}

// Read bandwidth: sums a buffer (already written once, so its pages exist) on `threads` threads. Sixteen
// independent partial sums per thread let the compiler vectorize the loop without reassociating floats,
// so the loop is bound by memory, not by the latency of one add chain.
// Returns {GB/s of wall time, GB per CPU-second}.
std::pair<double, double> read_bandwidth_gbs(const std::vector<float>& buf, int threads, int reps) {
    constexpr int64_t kW = 16;
    const int64_t n = int64_t(buf.size()) / kW * kW;
    const float* p = buf.data();
    volatile float sink = 0;
    const Timing t = time_median(
        [&] {
            float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
            {
                float acc[kW] = {};
#pragma omp for schedule(static)
                for (int64_t i = 0; i < n; i += kW)
                    for (int64_t j = 0; j < kW; ++j) acc[j] += p[i + j];
                for (int64_t j = 0; j < kW; ++j) total += acc[j];
            }
            sink = sink + total;
        },
        reps, 2.0);
    const double gb = double(n) * sizeof(float) / 1e9;
    return {gb / t.wall, gb / t.cpu};
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}


// One mul_mat graph: weights [k, n] of `type` (random, quantized by the reference quantizer), activations
// [k, m]. Returns the median times of backend.compute.
Timing time_matmul(Backend& backend, DType type, int64_t k, int64_t n, int64_t m, const std::vector<float>& wf,
                   int reps, double budget_s, const std::vector<float>* evict) {
    Context ctx;
    Tensor* a = ctx.new_tensor(type, {k, n}, "weights");
    Tensor* b = ctx.new_tensor(DType::F32, {k, m}, "activations");
    Tensor* out = mul_mat(ctx, a, b);
    out->flags |= kFlagOutput;
    Graph graph;
    graph.expand(out);

    auto wbuf = backend.alloc_buffer(a->nbytes());
    a->buffer = wbuf.get();
    a->data = wbuf->base();
    const TypeTraits& tr = type_traits(type);
    const size_t rb = a->row_bytes();
    for (int64_t r = 0; r < n; ++r)
        tr.from_float(wf.data() + size_t(r * k), static_cast<char*>(a->data) + size_t(r) * rb, k);
    // The layout a loaded model's weights run in: levels with a layout of their own (amx tiles, interleaved
    // rows) repack at load, and their decode kernels read that, not the file's rows.
    const auto repacked = backend.repack_weights({a});

    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> bf(size_t(k * m));
    for (float& x : bf) x = dist(rng);
    auto bbuf = backend.alloc_buffer(b->nbytes());
    b->buffer = bbuf.get();
    b->data = bbuf->base();
    backend.set_tensor(*b, bf.data(), 0, bf.size() * sizeof(float));

    auto inter = allocate_graph(graph, backend);
    return time_median([&] { backend.compute(graph); }, reps, budget_s, [&] {
        if (evict) evict_caches(*evict);
    });
}

int bench_matmul(int argc, char** argv) {
    int size = 4096, reps = 5, bw_mib = 1024;
    std::string types_s = "f32,f16,bf16,q8_0,q4_0", threads_s = "1,2", m_s = "1,512";
    bool json = false;
    ArgParser p("bench matmul", "[options]",
                "GFLOP/s of mul_mat on the cpu backend per weight type, decode (m = 1) and prefill (m = 512),\n"
                "against this machine's FMA peak and its measured read bandwidth.");
    p.option("-n,--size", &size, "N", "weights are N x N (default 4096)", 32, 65536);
    p.option("--types", &types_s, "LIST", "weight types, comma-separated (default f32,f16,bf16,q8_0,q4_0)");
    p.option("-m,--m", &m_s, "LIST", "activation rows per product, comma-separated (default 1,512)");
    p.option("-t,--threads", &threads_s, "LIST", "thread counts, comma-separated (default 1,2)");
    p.option("-r,--reps", &reps, "N", "timed runs per case, median reported (default 5)", 1, 1000);
    p.option("--bw-mib", &bw_mib, "MIB", "buffer for the bandwidth measurement (default 1024)", 64, 16384);
    p.flag("--json", &json, "one JSON object per line");
    if (!p.parse(argc, argv)) return 0;

    std::vector<DType> types;
    for (const auto& t : split(types_s)) types.push_back(type_from_name(t));
    auto ints = [](const std::string& list, const char* flag, int64_t lo, int64_t hi) {
        std::vector<int64_t> v;
        for (const auto& s : split(list)) {
            char* end = nullptr;
            const long long x = std::strtoll(s.c_str(), &end, 10);
            if (*end != '\0' || x < lo || x > hi)
                throw UsageError(std::string(flag) + ": '" + s + "' is not an integer in [" + std::to_string(lo) +
                                 ", " + std::to_string(hi) + "]");
            v.push_back(x);
        }
        if (v.empty()) throw UsageError(std::string(flag) + ": empty list");
        return v;
    };
    if (!m_s.empty() && !std::isdigit(static_cast<unsigned char>(m_s[0])))
        throw UsageError("-m here is the activation rows (LIST of numbers), not a model: '" + m_s +
                         "'; a model's speed is `tessera bench -m MODEL`");
    const std::vector<int64_t> ms = ints(m_s, "--m", 1, 65536);
    const std::vector<int64_t> thread_counts = ints(threads_s, "--threads", 1, 1024);
    for (DType t : types)
        if (type_traits(t).from_float == nullptr || t == DType::Q8_K)
            throw UsageError(std::string("--types: ") + type_name(t) + " cannot be a weight type here");

    // The machine: clock, FMA peak, measured read bandwidth per thread count.
    const double mhz = cpu_mhz();
    const std::string cpu_level = create_backend("cpu")->kernel_level();  // TESSERA_CPU can force a lower one
    // The float lanes of the widest vectors the level's kernels use (2 FMA units assumed, as on the x86
    // cores this project runs on; NEON and the portable level count 128-bit vectors).
    const int lanes = cpu_level == "amx" || cpu_level == "avx512" ? 16 : cpu_level == "avx2" ? 8 : 4;
    const double peak_core = 2.0 * lanes * 2 * mhz / 1000.0;  // 2 FMA units x lanes x 2 flop, GFLOP/s
    std::vector<float> bwbuf(size_t(bw_mib) * 1024 * 1024 / sizeof(float), 1.0f);
    std::vector<double> bw, bw_cpu;
    for (int64_t t : thread_counts) {
        const auto [wall, cpu] = read_bandwidth_gbs(bwbuf, int(t), 5);
        bw.push_back(wall);
        bw_cpu.push_back(cpu);
    }
    bwbuf = {};
    const double load_before = load_average();
    if (json) {
        std::printf("{\"bench\":\"matmul\",\"kind\":\"machine\",\"cpu_mhz\":%.1f,\"clock_source\":\"/proc/cpuinfo cpu MHz\","
                    "\"peak_gflops_per_core\":%.1f,\"bw_buffer_mib\":%d,\"loadavg\":%.2f,\"cpu_level\":\"%s\"",
                    mhz, peak_core, bw_mib, load_before, cpu_level.c_str());
        for (size_t i = 0; i < thread_counts.size(); ++i)
            std::printf(",\"read_gbs_%lldt\":%.2f,\"read_gb_per_cpu_s_%lldt\":%.2f", (long long)thread_counts[i], bw[i],
                        (long long)thread_counts[i], bw_cpu[i]);
        std::printf("}\n");
    } else {
        std::printf("tessera bench matmul: weights %d x %d, cpu backend (%s kernels), median of up to %d runs\n", size,
                    size, cpu_level.c_str(), reps);
        std::printf("peak: %.1f GFLOP/s per core = 2 FMA units x %d f32 lanes x 2 flop x %.3f GHz "
                    "(clock read from /proc/cpuinfo 'cpu MHz')\n",
                    peak_core, lanes, mhz / 1000.0);
        std::printf("memory: read-sum over %d MiB:", bw_mib);
        for (size_t i = 0; i < thread_counts.size(); ++i)
            std::printf(" %.1f GB/s (%.1f GB per CPU-second) with %lld thread%s%s", bw[i], bw_cpu[i],
                        (long long)thread_counts[i], thread_counts[i] > 1 ? "s" : "",
                        i + 1 < thread_counts.size() ? "," : "");
        std::printf("\nload average %.2f on %d cores%s\n", load_before, physical_cores(),
                    load_before > physical_cores() ? ": the machine is shared and busy, so wall-clock figures include "
                                                     "waiting for a core; GFLOP per CPU-second is the kernels' own rate"
                                                   : "");
        std::printf("\n%-6s %5s %7s %10s %9s %7s %9s %9s %6s\n", "type", "m", "threads", "ms", "GFLOP/s", "%peak",
                    "GFLOP/", "weight", "%bw");
        std::printf("%-6s %5s %7s %10s %9s %7s %9s %9s %6s\n", "", "", "", "(median)", "(wall)", "", "cpu-s", "GB/s",
                    "");
    }
    std::fflush(stdout);

    const int64_t k = size, n = size;
    std::vector<float> wf(size_t(k * n));
    {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& x : wf) x = dist(rng);
    }
    // Decode figures are about DRAM: between runs, sweep 128 MiB (4x this machine's 32 MiB L3) to evict the weights.
    const std::vector<float> evict(size_t(128) * 1024 * 1024 / sizeof(float), 1.0f);
    auto backend = create_backend("cpu");
    for (DType type : types) {
        const double wbytes = double(row_bytes(type, k)) * double(n);
        for (int64_t m : ms)
            for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
                const int threads = int(thread_counts[ti]);
                backend->set_threads(threads);
                const Timing t = time_matmul(*backend, type, k, n, m, wf, reps, m > 16 ? 3.0 : 1.0,
                                            m <= 16 ? &evict : nullptr);
                const double flop = 2.0 * double(k) * double(n) * double(m);
                const double gflops = flop / t.wall / 1e9;
                const double gflops_cpu = flop / t.cpu / 1e9;  // per CPU-second, i.e. per core actually used
                const double peak = peak_core * threads;
                const double wgbs = wbytes / t.wall / 1e9;  // weights are read once per product
                if (json) {
                    std::printf("{\"bench\":\"matmul\",\"type\":\"%s\",\"n\":%lld,\"k\":%lld,\"m\":%lld,\"threads\":%d,"
                                "\"ms\":%.4f,\"cpu_ms\":%.4f,\"gflops\":%.2f,\"gflops_per_cpu_s\":%.2f,"
                                "\"peak_gflops\":%.1f,\"pct_peak\":%.1f,\"weight_gbs\":%.2f,\"read_gbs\":%.2f,"
                                "\"pct_bw\":%.1f}\n",
                                type_name(type), (long long)n, (long long)k, (long long)m, threads, t.wall * 1e3,
                                t.cpu * 1e3, gflops, gflops_cpu, peak, 100.0 * gflops / peak, wgbs, bw[ti],
                                100.0 * wgbs / bw[ti]);
                } else if (m <= 16) {
                    std::printf("%-6s %5lld %7d %10.3f %9.1f %6.1f%% %9.1f %9.1f %5.1f%%\n", type_name(type),
                                (long long)m, threads, t.wall * 1e3, gflops, 100.0 * gflops / peak, gflops_cpu, wgbs,
                                100.0 * wgbs / bw[ti]);
                } else {
                    std::printf("%-6s %5lld %7d %10.3f %9.1f %6.1f%% %9.1f %9s %6s\n", type_name(type),
                                (long long)m, threads, t.wall * 1e3, gflops, 100.0 * gflops / peak, gflops_cpu, "",
                                "");
                }
                std::fflush(stdout);
            }
    }
    if (!json)
        std::printf("\n%%peak: prefill should approach it (compute-bound); %%bw: decode (m = 1) reads each weight "
                    "byte once, so weight GB/s against the measured read bandwidth is its efficiency.\n"
                    "load average at the end: %.2f\n",
                    load_average());
    return 0;
}

int cmd_bench_matmul(int argc, char** argv) {
    return run_guarded("bench matmul", [&] { return bench_matmul(argc, argv); });
}

RegisterBench reg("matmul", "mul_mat GFLOP/s per weight type vs. FMA peak and measured bandwidth", cmd_bench_matmul);

}  // namespace

}  // namespace tessera::cli
