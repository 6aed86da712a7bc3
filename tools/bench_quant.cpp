// `tessera bench quant`: for every GGUF quant type, bits per weight and the round-trip error of the
// reference quantizer on normal(0, 1) data (rms and max, and rms relative to the data's rms), plus how
// fast the reference quantizer and dequantizer run. The error figures are what `tessera quantize` gives.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/types.h"
#include "tools/args.h"
#include "tools/command.h"

namespace tessera::cli {

namespace {

double seconds(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int bench_quant(int argc, char** argv) {
    int n_m = 1;
    uint64_t seed = 42;
    ArgParser p("bench quant", "[--n MILLIONS] [--seed S]",
                "Round-trip error and speed of the reference quantizers on normal(0,1) floats.");
    p.option("--n", &n_m, "MILLIONS", "values, in units of 2^20 (default 1)", 1, 256);
    p.option("--seed", &seed, "S", "random seed (default 42)");
    if (!p.parse(argc, argv)) return 0;

    const int64_t n = int64_t(n_m) << 20;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    double sum_sq = 0;
    for (auto& v : x) {
        v = nd(rng);
        sum_sq += double(v) * v;
    }
    const double rms_x = std::sqrt(sum_sq / double(n));
    std::printf("%lld normal(0,1) values, seed %llu (data rms %.4f)\n\n", (long long)n, (unsigned long long)seed, rms_x);
    std::printf("%-6s %8s %10s %10s %9s %12s %12s\n", "type", "bits/w", "rmse", "max err", "rel rms", "quant MB/s",
                "dequant MB/s");
    const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
    for (DType t : types) {
        const TypeTraits& tr = type_traits(t);
        std::vector<uint8_t> q(row_bytes(t, n));
        auto t0 = std::chrono::steady_clock::now();
        tr.from_float(x.data(), q.data(), n);
        const double tq = seconds(t0);
        t0 = std::chrono::steady_clock::now();
        tr.to_float(q.data(), y.data(), n);
        const double td = seconds(t0);
        double se = 0, emax = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double d = double(y[size_t(i)]) - x[size_t(i)];
            se += d * d;
            emax = std::max(emax, std::fabs(d));
        }
        const double rmse = std::sqrt(se / double(n));
        std::printf("%-6s %8.4f %10.6f %10.5f %9.5f %12.1f %12.1f\n", tr.name,
                    8.0 * double(tr.block_bytes) / double(tr.block_size), rmse, emax, rmse / rms_x,
                    double(n) * 4 / tq * 1e-6, double(n) * 4 / td * 1e-6);
    }
    return 0;
}

int cmd_bench_quant(int argc, char** argv) {
    return run_guarded("bench quant", [&] { return bench_quant(argc, argv); });
}

RegisterBench reg("quant", "bits per weight and round-trip error of each quant type's reference quantizer",
                  cmd_bench_quant);

}  // namespace

}  // namespace tessera::cli
