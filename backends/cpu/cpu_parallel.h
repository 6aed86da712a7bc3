// Threading helpers for the cpu backend: an OpenMP loop that carries the first
// exception out of the parallel region (throwing across it is undefined), and
// per-thread scratch owned by the backend instance (no global mutable state).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

namespace tessera::cpu {

// Calls f(i, thread_id) for i in [0, n) on up to `threads` threads, dynamic schedule.
// Rethrows the first exception any call raised, after the loop.
template <class F>
void parallel_for(int64_t n, int threads, F&& f) {
    if (n <= 0) return;
    if (threads <= 1 || n == 1) {
        for (int64_t i = 0; i < n; ++i) f(i, 0);
        return;
    }
    std::exception_ptr error;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
        try {
            f(i, omp_get_thread_num());
        } catch (...) {
#pragma omp critical(tessera_cpu_error)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

// Like parallel_for, but hands each thread a contiguous chunk [begin, end) of
// [0, n): for cheap per-item work where scheduling each item would dominate.
template <class F>
void parallel_chunks(int64_t n, int threads, F&& f) {
    if (n <= 0) return;
    if (threads <= 1 || n == 1) {
        f(int64_t(0), n, 0);
        return;
    }
    const int64_t parts = std::min<int64_t>(n, int64_t(threads));
    parallel_for(parts, threads, [&](int64_t p, int tid) { f(n * p / parts, n * (p + 1) / parts, tid); });
}

// How many of `threads` to use for `work` units (elements touched, or multiply-adds): a thread gets at
// least `per_thread` units, since below that the fork/join (and, on a busy machine, waiting for a
// descheduled thread at the barrier) costs more than the work.
inline int threads_for(int threads, double work, double per_thread = 65536.0) {
    const double useful = work / per_thread;
    return useful >= double(threads) ? threads : std::max(1, int(useful));
}

// Buffers reused across nodes and calls: one per thread plus a few shared ones.
class Scratch {
public:
    // Call outside a parallel region before handing thread ids up to threads - 1.
    void prepare(int threads) {
        if (int(per_thread_.size()) < threads) per_thread_.resize(size_t(threads));
    }
    // Thread tid's own buffer of at least n floats (contents unspecified).
    float* thread_floats(int tid, size_t n) {
        auto& v = per_thread_[size_t(tid)];
        if (v.size() < n) v.resize(n);
        return v.data();
    }
    // Shared buffer `slot` (0..kSlots-1) of at least `bytes` bytes; only outside parallel regions.
    static constexpr int kSlots = 4;
    char* shared(int slot, size_t bytes) {
        auto& v = shared_[slot];
        if (v.size() < (bytes + 63) / 64) v.resize((bytes + 63) / 64);
        return reinterpret_cast<char*>(v.data());
    }

private:
    struct alignas(64) Line {
        char bytes[64];
    };
    std::vector<std::vector<float>> per_thread_;
    std::vector<Line> shared_[kSlots];
};

}  // namespace tessera::cpu
