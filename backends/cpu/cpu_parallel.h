// Threading helpers for the cpu backend: loops over the backend's own thread pool (core/thread_pool.h:
// waiting threads spin briefly, then sleep, so a busy neighbour does not multiply our time; exceptions are
// carried out of the loop), and per-thread scratch owned by the backend instance (no global mutable state).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace tessera::cpu {

// Calls f(i, thread_id) for i in [0, n) on up to `threads` of the pool's threads, one index at a time to
// whichever thread is free. Rethrows the first exception any call raised, after the loop.
template <class F>
void parallel_for(ThreadPool& pool, int64_t n, int threads, F&& f) {
    pool.run(n, threads, f);
}

// Like parallel_for, but hands out contiguous chunks [begin, end) of [0, n): for cheap per-item work where
// scheduling each item would dominate. A few chunks per thread rather than one, so that when the OS runs
// another program on one of our cores, the threads still running take over the chunks it would have done.
template <class F>
void parallel_chunks(ThreadPool& pool, int64_t n, int threads, F&& f) {
    if (n <= 0) return;
    if (threads <= 1 || n == 1) {
        f(int64_t(0), n, 0);
        return;
    }
    constexpr int64_t kChunksPerThread = 4;
    const int64_t parts = std::min<int64_t>(n, int64_t(threads) * kChunksPerThread);
    pool.run(parts, threads, [&](int64_t p, int tid) { f(n * p / parts, n * (p + 1) / parts, tid); });
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
    enum : int { kSlots = 4 };  // not an inline variable: kernel-level sources are built with -fno-weak (CMakeLists.txt)
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
