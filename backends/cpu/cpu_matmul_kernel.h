// The register-blocked inner kernel of the float-weight matmul: RN weight rows
// times RM activation rows in one pass over k, RN*RM vector accumulators.
// Each weight vector loaded is used RM times and each activation vector RN
// times, which is what lets prefill run from cache at FMA speed; with RM = 1
// (decode) it streams the weight rows once. Private to backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <array>
#include <utility>

#include "backends/cpu/cpu_simd.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Keeps v in a register: without it GCC folds the weight load into each of the RM FMAs that use it,
// loading the same vector RM times and making the kernel load-bound instead of FMA-bound.
inline void pin_register(vfloat& v) {
#if defined(__GNUC__) && (defined(__AVX2__) || defined(__AVX512F__))
    auto& reg = reinterpret_cast<typename vfloat::register_type&>(v);
    asm("" : "+v"(reg));
#else
    (void)v;
#endif
}

// The block shape of prefill: RN x RM accumulators, plus RM activation vectors and a weight vector, must
// fit the register file. x86 without AVX-512 has 16 vector registers: 6 x 4 spilled there (F16 pp128,
// TinyLlama-1.1B shape, 2 threads, avx2 level: 6 x 4 60 tok/s, 4 x 3 75, 3 x 4 79, 3 x 5 68, 2 x 4 62);
// AVX-512 and NEON have 32.
#ifndef TESSERA_CPU_BLOCK_ROWS
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX512F__)
#define TESSERA_CPU_BLOCK_ROWS 3
#define TESSERA_CPU_BLOCK_COLS 4
#else
#define TESSERA_CPU_BLOCK_ROWS 6
#define TESSERA_CPU_BLOCK_COLS 4
#endif
#endif
constexpr int kBlockRows = TESSERA_CPU_BLOCK_ROWS;  // RN: weight rows per kernel call
constexpr int kBlockCols = TESSERA_CPU_BLOCK_COLS;  // RM: activation rows per kernel call
// Decode (one activation row) streams this many weight rows side by side whatever the prefill shape: it
// needs only RN accumulators, and fewer streams were slower (tg16 F16, avx2 level: 6 rows 13.7-14.0 tok/s,
// 3 rows 12.4-12.6).
constexpr int kDecodeRows = 6;

// out[c * os + r] (+)= dot(w row r, a row c) over k elements, r < RN, c < RM.
// w rows are ws elements apart, a rows as floats apart. kAskAhead: decode's prefetch (below), which the
// caller turns off where float_kernel_tuning() says the CPU's own prefetchers do better.
template <class W, int RN, int RM, bool kAskAhead = true>
void dot_block(const typename W::T* w, int64_t ws, const float* a, int64_t as, int64_t k, float* out, int64_t os,
               bool accumulate) {
    vfloat acc[RN * RM];
    for (int i = 0; i < RN * RM; ++i) acc[i] = vfloat(0.0f);
    const int64_t kv = k / kLanes * kLanes;
    // Decode (one activation row) streams each weight row once, so it runs at the speed memory delivers:
    // the hardware prefetch alone kept too few lines in flight for the RN rows' streams. Each row's line 512
    // bytes ahead is asked for into L1 as the kernel reaches a new line (tg16, TinyLlama-1.1B F16, 2 threads,
    // avx512 level: 11.9-12.5 tok/s without, 13.1-13.9 at 512 bytes, 12.7-13.2 at 1 KiB, 12.1-12.4 at 2 KiB;
    // into L2 slower at every distance; blocks of 2, 3 or 4 rows slower than 6). On AMD Zen 4 it is slower
    // than none (cpu_level.h: FloatKernelTuning).
    using T = typename W::T;
    constexpr int64_t kLineElems = 64 / int64_t(sizeof(T)), kAheadElems = 512 / int64_t(sizeof(T));
    for (int64_t p = 0; p < kv; p += kLanes) {
        if (RM == 1 && kAskAhead && p % kLineElems == 0) {
#pragma GCC unroll 8
            for (int r = 0; r < RN; ++r) __builtin_prefetch(w + r * ws + p + kAheadElems, 0, 3);
        }
        vfloat av[RM];
#pragma GCC unroll 8
        for (int c = 0; c < RM; ++c) av[c] = vload(a + c * as + p);
#pragma GCC unroll 8
        for (int r = 0; r < RN; ++r) {
            vfloat wv = W::load(w + r * ws + p);
            pin_register(wv);
#pragma GCC unroll 8
            for (int c = 0; c < RM; ++c) acc[r * RM + c] = xsimd::fma(wv, av[c], acc[r * RM + c]);
        }
    }
    alignas(64) float sums[RN * RM];
    int done = 0;
    for (; done + 16 <= RN * RM; done += 16) reduce16(acc + done, sums + done);
    for (int i = done; i < RN * RM; ++i) sums[i] = xsimd::hadd(acc[i]);
    for (int64_t p = kv; p < k; ++p)  // k tail, scalar
        for (int r = 0; r < RN; ++r)
            for (int c = 0; c < RM; ++c) sums[r * RM + c] += W::scalar(w[r * ws + p]) * a[c * as + p];
    for (int c = 0; c < RM; ++c)
        for (int r = 0; r < RN; ++r) {
            float& o = out[c * os + r];
            o = accumulate ? o + sums[r * RM + c] : sums[r * RM + c];
        }
}

template <class W>
using DotBlockFn = void (*)(const typename W::T*, int64_t, const float*, int64_t, int64_t, float*, int64_t, bool);

namespace detail {
template <class W, int... I>
constexpr auto dot_block_table(std::integer_sequence<int, I...>) {
    // Entry (rn - 1) * kBlockCols + (rm - 1) is the kernel for rn rows by rm columns.
    return std::array<DotBlockFn<W>, sizeof...(I)>{dot_block<W, I / kBlockCols + 1, I % kBlockCols + 1>...};
}
}  // namespace detail

// The kernel for rn (1..kBlockRows) rows by rm (1..kBlockCols) columns: full blocks and edge blocks.
template <class W>
DotBlockFn<W> dot_block_for(int rn, int rm) {
    // Not static: kernel-level sources are built with -fno-weak, which would give a function's static data one
    // copy per translation unit (and a warning); a constexpr local folds to the same constant table.
    constexpr auto table = detail::dot_block_table<W>(std::make_integer_sequence<int, kBlockRows * kBlockCols>{});
    return table[size_t((rn - 1) * kBlockCols + (rm - 1))];
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
