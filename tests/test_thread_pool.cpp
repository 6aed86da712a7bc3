// The thread pool (core/thread_pool.h) and the cpu backend's loops over it: every index exactly once,
// thread ids in range, exceptions carried out, loops nested and run from several threads at once, with
// waiting threads that spin and ones that sleep at once. Correctness only: nothing here is timed.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_parallel.h"
#include "core/thread_pool.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// Runs a loop of n on `threads` and checks each index ran once, on a tid below `threads`, and had returned
// by the time the loop did. `slow_workers`: the pool's own threads pause before they record an index, so a
// loop that returned before its workers finished would be seen.
void check_each_once(ThreadPool& pool, int64_t n, int threads, bool slow_workers = false) {
    std::vector<std::atomic<int>> hits(size_t(n > 0 ? n : 0));
    std::atomic<int> bad_tid{0};
    pool.run(n, threads, [&](int64_t i, int tid) {
        if (slow_workers && tid != 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        hits[size_t(i)].fetch_add(1, std::memory_order_relaxed);
        if (tid < 0 || tid >= std::max(1, std::min(threads, pool.size()))) bad_tid.fetch_add(1);
    });
    int64_t wrong = 0, first_wrong = -1;
    for (int64_t i = 0; i < n; ++i)
        if (hits[size_t(i)].load() != 1 && wrong++ == 0) first_wrong = i;
    INFO("pool of ", pool.size(), ", loop of ", n, " on ", threads, " threads; first index not run once: ",
         first_wrong);
    CHECK(wrong == 0);
    CHECK(bad_tid.load() == 0);
}

}  // namespace

TEST_CASE("thread pool: every index exactly once, thread ids below the count, for pools of 1..6 threads") {
    for (int spin : {0, 1000}) {  // sleeping at once and spinning long take different wake-up paths
        for (int size = 1; size <= 6; ++size) {
            ThreadPool pool(size, spin);
            CHECK(pool.size() == size);
            for (int threads : {1, 2, size, size + 3})
                for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) check_each_once(pool, n, threads);
            for (int64_t n : {2, 5, 40}) check_each_once(pool, n, size, true);
        }
    }
}

TEST_CASE("thread pool: many short loops in a row (the decode pattern), and resizing between loops") {
    ThreadPool pool(3, 20);
    for (int rep = 0; rep < 2000; ++rep) check_each_once(pool, 1 + rep % 9, 3);
    pool.resize(2);
    CHECK(pool.size() == 2);
    for (int rep = 0; rep < 200; ++rep) check_each_once(pool, 5, 2);
    pool.resize(4);
    for (int rep = 0; rep < 200; ++rep) check_each_once(pool, 17, 4);
    pool.resize(0);  // below 1 means 1
    CHECK(pool.size() == 1);
    check_each_once(pool, 10, 4);
}

TEST_CASE("thread pool: the first exception is rethrown after the loop, and the pool stays usable") {
    for (int spin : {0, 1000}) {
        ThreadPool pool(4, spin);
        for (int64_t bad : {int64_t(0), int64_t(37), int64_t(99)}) {
            std::atomic<int> ran{0};
            std::string message;
            try {
                pool.run(100, 4, [&](int64_t i, int) {
                    ran.fetch_add(1);
                    if (i == bad) throw std::runtime_error("index " + std::to_string(i));
                });
            } catch (const std::runtime_error& e) {
                message = e.what();
            }
            CHECK(message == "index " + std::to_string(bad));
            CHECK(ran.load() >= 1);
            CHECK(ran.load() <= 100);
            check_each_once(pool, 100, 4);
        }
        // every index throws: exactly one exception comes out
        int caught = 0;
        try {
            pool.run(50, 4, [](int64_t, int) { throw std::logic_error("all"); });
        } catch (const std::logic_error&) {
            ++caught;
        }
        CHECK(caught == 1);
        // on one thread too
        CHECK_THROWS_AS(pool.run(5, 1, [](int64_t i, int) { if (i == 3) throw std::out_of_range("3"); }),
                        std::out_of_range);
    }
}

TEST_CASE("thread pool: a loop started inside a loop runs inline on the caller's thread id") {
    ThreadPool pool(3, 50);
    constexpr int64_t kOuter = 40, kInner = 13;
    std::vector<std::atomic<int>> hits(size_t(kOuter * kInner));
    std::atomic<int> tid_changed{0};
    pool.run(kOuter, 3, [&](int64_t i, int outer_tid) {
        pool.run(kInner, 3, [&](int64_t j, int inner_tid) {
            if (inner_tid != outer_tid) tid_changed.fetch_add(1);
            hits[size_t(i * kInner + j)].fetch_add(1);
        });
    });
    int wrong = 0;
    for (auto& h : hits) wrong += h.load() != 1;
    CHECK(wrong == 0);
    CHECK(tid_changed.load() == 0);
}

TEST_CASE("thread pool: two pools on two threads never meet; one pool used from two threads takes turns") {
    // Two backends in one process: each thread drives its own pool.
    auto drive = [](ThreadPool& pool, int64_t salt, std::atomic<int>& failures) {
        for (int rep = 0; rep < 300; ++rep) {
            const int64_t n = 1 + (rep * 7 + salt) % 50;
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            pool.run(n, pool.size(), [&](int64_t i, int) { hits[size_t(i)].fetch_add(1); });
            for (auto& h : hits)
                if (h.load() != 1) failures.fetch_add(1);
        }
    };
    {
        ThreadPool a(2, 30), b(3, 0);
        std::atomic<int> failures{0};
        std::thread ta([&] { drive(a, 1, failures); }), tb([&] { drive(b, 2, failures); });
        ta.join();
        tb.join();
        CHECK(failures.load() == 0);
    }
    {
        ThreadPool shared(2, 30);
        std::atomic<int> failures{0};
        std::thread ta([&] { drive(shared, 3, failures); }), tb([&] { drive(shared, 4, failures); });
        ta.join();
        tb.join();
        CHECK(failures.load() == 0);
    }
}

TEST_CASE("cpu parallel_chunks: the chunks tile [0, n) without overlap, for every thread count") {
    for (int size = 1; size <= 5; ++size) {
        ThreadPool pool(size, 10);
        for (int threads = 1; threads <= size + 1; ++threads)
            for (int64_t n : {0, 1, 2, 5, 8, 9, 100, 4097}) {
                std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                std::atomic<int> empty{0};
                cpu::parallel_chunks(pool, n, threads, [&](int64_t b, int64_t e, int) {
                    if (b >= e) empty.fetch_add(1);
                    for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
                });
                int wrong = 0;
                for (auto& h : hits) wrong += h.load() != 1;
                INFO("pool ", size, ", ", threads, " threads, n = ", n);
                CHECK(wrong == 0);
                CHECK(empty.load() == 0);
            }
    }
}

TEST_CASE("cpu parallel_for carries an exception out like the OpenMP loop it replaced") {
    ThreadPool pool(2);
    CHECK_THROWS_WITH_AS(cpu::parallel_for(pool, 10, 2, [](int64_t i, int) {
                             if (i == 7) throw std::runtime_error("seven");
                         }),
                         "seven", std::runtime_error);
}

namespace {

// One model-sized slice of work: a Q4_0 and an F16 product, each big enough that the cpu backend splits it
// over its threads, with its own weights, storage and backend.
struct Model {
    Context ctx;
    HostArena arena;
    Graph graph;
    Tensor* out = nullptr;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Buffer> buffer;

    Model(int64_t m, int threads) {
        Tensor* wq = arena.make(ctx, DType::Q4_0, {512, 384}, "wq");
        Tensor* wf = arena.make(ctx, DType::F16, {384, 256}, "wf");
        Tensor* x = arena.make(ctx, DType::F32, {512, m}, "x");
        arena.fill_random(wq, 1);
        arena.fill_random(wf, 2);
        arena.fill_random(x, 3);
        out = mul_mat(ctx, wf, mul_mat(ctx, wq, x));
        out->flags |= kFlagOutput;
        graph.expand(out);
        BackendOptions opt;
        opt.threads = threads;
        backend = create_backend("cpu", opt);
        buffer = allocate_graph(graph, *backend);
    }
    std::vector<float> compute() {
        backend->compute(graph);
        return to_floats(*out);
    }
};

}  // namespace

TEST_CASE("cpu backend: two models computing on two threads at once get what each gets alone") {
    for (int64_t m : {int64_t(1), int64_t(9)}) {  // decode (one column) and a prefill-shaped batch
        Model a(m, 2), b(m, 2);
        const std::vector<float> want = a.compute();
        REQUIRE(want == b.compute());
        std::atomic<int> differ{0};
        auto loop = [&](Model& model) {
            for (int rep = 0; rep < 30; ++rep)
                if (model.compute() != want) differ.fetch_add(1);
        };
        std::thread ta([&] { loop(a); }), tb([&] { loop(b); });
        ta.join();
        tb.join();
        INFO("m = ", m);
        CHECK(differ.load() == 0);
    }
}
