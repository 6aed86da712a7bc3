#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tessera {

namespace {

// Default spin before sleeping. A decode step runs a loop every ~100 us with a few microseconds of serial
// work between loops, so a short spin catches nearly every next loop on an idle machine; on a busy one a
// waiter gives up the core after at most this long. Measured on a 2-core EPYC (TinyLlama Q4_0 tg32,
// 2 threads): 10-35 us all keep the idle speed and give ~17 tok/s beside a busy process; 0 loses ~10 %
// idle (every loop then pays a futex wake-up), 200 us and more lose a quarter beside the busy process.
constexpr int kDefaultSpinUs = 20;

// Sleeping on a 32-bit word until it no longer holds `value`, and waking its sleepers.
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free);

void sleep_while_equal(std::atomic<uint32_t>& word, uint32_t value) {
#if defined(__linux__)
    // Returns at once if the word changed since `value` was read (the kernel compares under its lock).
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value, nullptr, nullptr, 0);
#else
    word.wait(value, std::memory_order_seq_cst);
#endif
}

void wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    word.notify_all();
#endif
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spins until done() or `spin_us` microseconds passed; true if done() came true.
template <class Done>
bool spin_until(int spin_us, Done&& done) {
    if (done()) return true;
    if (spin_us <= 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
    for (;;) {
        for (int i = 0; i < 64; ++i) {  // the clock is read once per 64 checks: it costs more than a check
            cpu_relax();
            if (done()) return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
    }
}

int spin_from_env() {
    const char* s = std::getenv("TESSERA_SPIN_US");
    if (!s || !*s) return kDefaultSpinUs;
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (*end != '\0' || v < 0) return kDefaultSpinUs;  // not a count: keep the default rather than fail a run
    return int(std::min<long>(v, 1000000));
}

// The pool and thread id this thread is running an index for, so a loop started from inside one runs
// inline with the same tid instead of waiting for the pool it is part of.
thread_local const ThreadPool* t_pool = nullptr;
thread_local int t_tid = 0;

struct InPool {
    const ThreadPool* saved_pool;
    int saved_tid;
    InPool(const ThreadPool* pool, int tid) : saved_pool(t_pool), saved_tid(t_tid) {
        t_pool = pool;
        t_tid = tid;
    }
    ~InPool() {
        t_pool = saved_pool;
        t_tid = saved_tid;
    }
};

}  // namespace

struct ThreadPool::Worker {
    // The caller bumps `mailbox` to invite this worker to job `job_gen`; the worker sleeps on it.
    alignas(64) std::atomic<uint32_t> mailbox{0};
    std::atomic<uint32_t> job_gen{0};
    std::atomic<uint32_t> sleeping{0};
    std::atomic<bool> stop{false};
    std::thread thread;
};

ThreadPool::ThreadPool(int threads, int spin_us)
    : size_(std::max(1, threads)), spin_us_(spin_us >= 0 ? std::min(spin_us, 1000000) : spin_from_env()) {}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::resize(int threads) {
    threads = std::max(1, threads);
    if (threads == size_) return;
    std::lock_guard<std::mutex> lock(run_mutex_);
    stop_workers();
    size_ = threads;
}

void ThreadPool::start_workers() {
    if (!workers_.empty() || size_ <= 1) return;
    try {
        for (int tid = 1; tid < size_; ++tid) {
            auto w = std::make_unique<Worker>();
            Worker* wp = w.get();
            w->thread = std::thread([this, wp, tid] { worker_main(*wp, tid); });
            workers_.push_back(std::move(w));
        }
    } catch (...) {  // all workers or none: a loop indexes them by tid
        stop_workers();
        throw;
    }
}

void ThreadPool::stop_workers() {
    for (auto& w : workers_) {
        w->stop.store(true, std::memory_order_seq_cst);
        w->mailbox.fetch_add(1, std::memory_order_seq_cst);
        wake_all(w->mailbox);
    }
    for (auto& w : workers_) w->thread.join();
    workers_.clear();
}

void ThreadPool::worker_main(Worker& w, int tid) {
    uint32_t seen = 0;
    for (;;) {
        if (!spin_until(spin_us_, [&] { return w.mailbox.load(std::memory_order_acquire) != seen; })) {
            // Dekker with the inviter: it bumps the mailbox, then reads `sleeping`; we set `sleeping`, then
            // the futex compares the mailbox. One of the two sees the other.
            w.sleeping.store(1, std::memory_order_seq_cst);
            for (uint32_t now; (now = w.mailbox.load(std::memory_order_seq_cst)) == seen;)
                sleep_while_equal(w.mailbox, now);
            w.sleeping.store(0, std::memory_order_relaxed);
        }
        seen = w.mailbox.load(std::memory_order_acquire);
        if (w.stop.load(std::memory_order_acquire)) return;
        work_on(w.job_gen.load(std::memory_order_acquire), tid);
    }
}

void ThreadPool::work_on(uint32_t gen, int tid) {
    InPool in_pool(this, tid);
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
        if (uint32_t(t >> 32) != gen || uint32_t(t) == 0) return;  // a later job, or nothing left to claim
        if (!ticket_.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel, std::memory_order_acquire))
            continue;
        // Claimed: the job cannot end before this index is finished, so its fields are stable.
        const int64_t i = first_ + int64_t(count_ - uint32_t(t));
        if (!failed_.load(std::memory_order_relaxed)) {
            try {
                task_(fn_, i, tid);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex_);
                if (!error_) error_ = std::current_exception();
                failed_.store(true, std::memory_order_relaxed);
            }
        }
        finish_one();
        t = ticket_.load(std::memory_order_acquire);
    }
}

void ThreadPool::finish_one() {
    if (unfinished_.fetch_sub(1, std::memory_order_seq_cst) != 1) return;
    done_word_.fetch_add(1, std::memory_order_seq_cst);
    if (caller_sleeping_.load(std::memory_order_seq_cst)) wake_all(done_word_);
}

void ThreadPool::run_erased(int64_t n, int threads, Task task, void* fn) {
    if (n <= 0) return;
    threads = std::clamp(threads, 1, size_);
    if (t_pool == this || threads == 1 || n == 1) {
        const int tid = t_pool == this ? t_tid : 0;
        for (int64_t i = 0; i < n; ++i) task(fn, i, tid);
        return;
    }
    std::lock_guard<std::mutex> lock(run_mutex_);
    start_workers();
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    // The ticket counts indices in 32 bits: a longer loop runs as several rounds.
    constexpr int64_t kRound = int64_t(1) << 31;
    for (int64_t first = 0; first < n && !failed_.load(std::memory_order_relaxed); first += kRound)
        run_round(first, uint32_t(std::min(kRound, n - first)), threads, task, fn);
    if (error_) {
        std::exception_ptr e = error_;
        error_ = nullptr;
        std::rethrow_exception(e);
    }
}

void ThreadPool::run_round(int64_t first, uint32_t count, int threads, Task task, void* fn) {
    const uint32_t gen = ++gen_;
    task_ = task;
    fn_ = fn;
    first_ = first;
    count_ = count;
    unfinished_.store(count, std::memory_order_relaxed);
    ticket_.store((uint64_t(gen) << 32) | count, std::memory_order_seq_cst);  // publishes the fields above
    const int invited = std::min<int64_t>(threads, count) - 1;
    for (int k = 0; k < invited; ++k) {
        Worker& w = *workers_[size_t(k)];
        w.job_gen.store(gen, std::memory_order_relaxed);
        w.mailbox.fetch_add(1, std::memory_order_seq_cst);
        if (w.sleeping.load(std::memory_order_seq_cst)) wake_all(w.mailbox);
    }
    work_on(gen, 0);
    // Every index is claimed; wait for the ones other threads still run.
    if (spin_until(spin_us_, [&] { return unfinished_.load(std::memory_order_acquire) == 0; })) return;
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    while (unfinished_.load(std::memory_order_seq_cst) != 0) {
        const uint32_t now = done_word_.load(std::memory_order_seq_cst);
        if (unfinished_.load(std::memory_order_seq_cst) == 0) break;
        sleep_while_equal(done_word_, now);
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
}

}  // namespace tessera
