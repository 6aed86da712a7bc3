// A small pool of persistent threads for data-parallel loops. Whoever needs threads owns a pool (the cpu
// backend holds one per instance), so two models in one process never share threads or state.
//
// Waiting is hybrid. A thread with nothing to do spins for a short, bounded time, because the next loop
// usually follows within microseconds and waking a sleeping thread costs tens of them; then it sleeps in
// the kernel (a futex on Linux, std::atomic::wait elsewhere). Spinning without a bound is what made
// OpenMP's threads slow on a machine where another process keeps a core busy: the spinner burns the time
// slice that the thread it waits for needs. Sleeping hands the core back.
//
// Indices are handed out one at a time from a shared counter, so the threads that are actually running do
// the work: a worker the OS has not scheduled yet takes nothing, and the caller never waits for a thread
// that holds no index. No OpenMP: this builds wherever C++20 threads and atomics do.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

namespace tessera {

class ThreadPool {
public:
    // `threads` counts the calling thread: threads - 1 workers, started on first use. `spin_us`: how long
    // an idle thread spins before it sleeps; < 0 takes TESSERA_SPIN_US when set, else the default.
    explicit ThreadPool(int threads = 1, int spin_us = -1);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return size_; }
    // Changes the thread count (the old workers are joined). Not from inside a loop of this pool.
    void resize(int threads);

    // Calls f(i, tid) for every i in [0, n) exactly once, on up to min(threads, size()) threads, and returns
    // when every call has returned. tid in [0, threads) names the thread (the caller is 0), for per-thread
    // scratch. If a call throws, indices not yet started are skipped and the first exception is rethrown
    // here. A loop started from inside f runs on the calling thread alone, with the caller's tid; a loop
    // started from another thread while one runs waits for it to finish.
    template <class F>
    void run(int64_t n, int threads, F&& f) {
        using Fn = std::remove_reference_t<F>;
        run_erased(n, threads, [](void* fn, int64_t i, int tid) { (*static_cast<Fn*>(fn))(i, tid); },
                   const_cast<void*>(static_cast<const void*>(&f)));
    }

    // Microseconds an idle thread spins before it sleeps (0 = sleeps at once).
    int spin_us() const { return spin_us_; }

private:
    using Task = void (*)(void* fn, int64_t i, int tid);
    struct Worker;

    void run_erased(int64_t n, int threads, Task task, void* fn);
    void run_round(int64_t first, uint32_t count, int threads, Task task, void* fn);
    void start_workers();
    void stop_workers();
    void worker_main(Worker& w, int tid);
    // Claims and runs indices of job `gen` until none is left (returns at once if that job is over).
    void work_on(uint32_t gen, int tid);
    void finish_one();

    int size_ = 1;
    int spin_us_ = 0;
    std::vector<std::unique_ptr<Worker>> workers_;  // index tid - 1
    std::mutex run_mutex_;                          // one loop at a time

    // The current job. Written by the caller before the ticket that publishes it; read by a worker only
    // after it claimed an index of that job (the job cannot end while an index is unfinished).
    Task task_ = nullptr;
    void* fn_ = nullptr;
    int64_t first_ = 0;
    uint32_t count_ = 0;
    uint32_t gen_ = 0;  // the caller's count of jobs

    // High 32 bits: the job's generation; low 32 bits: indices not yet claimed. A claim is a CAS that
    // decrements the low half only while the high half still names the job the claimer was invited to.
    alignas(64) std::atomic<uint64_t> ticket_{0};
    alignas(64) std::atomic<int64_t> unfinished_{0};  // indices claimed or not, whose call has not returned
    std::atomic<uint32_t> done_word_{0};              // bumped when unfinished_ reaches 0; the caller sleeps on it
    std::atomic<uint32_t> caller_sleeping_{0};
    std::atomic<bool> failed_{false};
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

}  // namespace tessera
