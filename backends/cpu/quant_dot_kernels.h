// Private to backends/cpu/quant_dot*.cpp: the register-blocked tile kernels and the SIMD helpers they share.
// A tile kernel computes R weight rows x C activation rows (R, C <= kTileRows/kTileCols) over `nblocks`
// blocks of the weight type; activations are in activation_type(w) (Q8_0 or Q8_K blocks).
#pragma once
#include "backends/cpu/kernel_level.h"
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/quant.h"
#include "core/types.h"

#include "backends/cpu/x86_isa.h"
#if TESSERA_X86_AVX2
#define TESSERA_QDOT_AVX2 1
#endif
// aarch64 levels other than portable (CMakeLists.txt: TESSERA_CPU_NEON): quant_dot_neon*.cpp define the tiles.
#if defined(__aarch64__) && defined(TESSERA_CPU_NEON)
#define TESSERA_QDOT_NEON 1
#endif

// The tile loops over rows, columns and groups have compile-time trip counts; they must be fully unrolled
// so the R x C accumulators live in registers (GCC at -O2 keeps them as a stack array otherwise).
#define TESSERA_UNROLL _Pragma("GCC unroll 16")

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

constexpr int kTileRows = 4;
constexpr int kTileCols = 8;

using TileFn = void (*)(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride,
                        float* out, int64_t out_row_stride);

// The kernel for an R x C tile (1 <= R <= kTileRows, 1 <= C <= kTileCols), or nullptr when this build has
// no SIMD kernel for the type (the caller then uses the portable path).
TileFn legacy_tile(DType w, int R, int C);  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4 with Q8_0 activations
TileFn k_tile(DType w, int R, int C);       // Q2_K .. Q6_K, IQ4_XS with Q8_K activations
// The 512-bit (AVX-512 VNNI) kernels of the same, where this level has them (else nullptr: use the above).
TileFn legacy_tile512(DType w, int R, int C);
TileFn k_tile512(DType w, int R, int C);
// Activations of type a (Q8_K) quantized with 512-bit code, the bytes core's quantizer writes. False
// (nothing written) where this level has no such code, for other types, and for k not a whole number of blocks.
bool quantize_activations512(DType a, const float* x, void* dst, int64_t k);

#if TESSERA_QDOT_AVX2

inline float h2f(uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Decode (one activation column) reads every weight byte once and, left to the hardware prefetcher, is bound
// by memory latency rather than bandwidth: a tile walks R rows of a few KiB side by side, streams too short
// and too many for the prefetcher to ramp up on. So each step also asks for block b of the next tile's rows
// (R rows ahead, several KiB: far enough to cover the latency). Into L2, not L1: L1 has only a couple of
// dozen miss buffers, and prefetches queued there stall the loads in use.
// Measured (`tessera bench matmul -m 1`, q4_0 4096 x 4096): 1 thread 7.2 -> 12.6 GB/s with an L1 hint,
// 2 threads 19 -> 21.7 GB/s going from the L1 to the L2 hint; TinyLlama Q4_0 tg32 at 2 threads 16.5 -> 33 tok/s.
//
// These helpers are inlined by force: the kernel levels are compiled with -fno-weak, and GCC then takes a
// function whose only effect is a prefetch for one without effects and deletes the calls to it wherever it
// was not inlined (a lambda that wrapped prefetch_ahead lost every prefetch, silently).
template <int R, size_t kBlockBytes>
[[gnu::always_inline]] inline void prefetch_next_tile(const uint8_t* w, size_t w_stride, int64_t b) {
    for (int r = 0; r < R; ++r) {
        const char* p = reinterpret_cast<const char*>(w + size_t(r + R) * w_stride + size_t(b) * kBlockBytes);
        for (size_t off = 0; off < kBlockBytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T1);
    }
}

// The `bytes` of a weight record `distance` bytes further along the same stream, a line at a time: for
// kernels that walk one long run of records (the rows8 strips, the amx panels). Into L1 by default: for the
// Q4_0 kernels an L2 hint was slower (tg16 Q4_0, 2 threads, amx 51.6 vs 50.6 tok/s, avx2 35.4 vs 32.8); the
// amx K-quant decode, whose records are 2-3 KiB, asks for L2 (amx_gemv_k.cpp).
enum class PrefetchInto { L1, L2 };
[[gnu::always_inline]] inline void prefetch_ahead(const uint8_t* p, size_t bytes, size_t distance, PrefetchInto into = PrefetchInto::L1) {
    for (size_t off = 0; off < bytes; off += 64) {
        const char* line = reinterpret_cast<const char*>(p + distance + off);
        if (into == PrefetchInto::L2)
            _mm_prefetch(line, _MM_HINT_T1);
        else
            _mm_prefetch(line, _MM_HINT_T0);
    }
}

// Part i (of `parts`, whole cache lines each) of the record `rec_bytes` long at `record`, `distance` bytes
// ahead: called once per part as a kernel works through a record, so that the lines of a big record (the
// K-quants' 1-3 KiB) are asked for a few at a time beside the arithmetic. Asked for all at once, they stalled
// the core until the miss queue drained (amx_gemv_k.cpp, rows8_k_matmul.cpp have the figures).
[[gnu::always_inline]] inline void prefetch_part(const uint8_t* record, size_t rec_bytes, int i, int parts,
                                                 size_t distance, PrefetchInto into) {
    const size_t slice = (rec_bytes + size_t(parts) * 64 - 1) / (size_t(parts) * 64) * 64;
    const size_t begin = size_t(i) * slice;
    if (begin < rec_bytes) prefetch_ahead(record + begin, std::min(slice, rec_bytes - begin), distance, into);
}

#if TESSERA_X86_AVX512
#define TESSERA_QDOT_VNNI 1
constexpr bool kVnni = true;  // the macro, for constant expressions
#else
constexpr bool kVnni = false;
#endif

// acc + sums of 4 adjacent u8 x s8 products per int32 lane. Without VNNI the pairwise int16 step
// saturates above 32767, so callers keep u <= 127 there (2 * 127 * 127 < 32767).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if TESSERA_QDOT_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// acc + sums of 2 adjacent int16 x int16 products per int32 lane.
inline __m256i dot_s16(__m256i acc, __m256i a, __m256i b) {
#if TESSERA_QDOT_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// 16 packed bytes -> 32 bytes: element j = low nibble of byte j, element j + 16 = its high nibble (the layout
// of a 32-value group in Q4_0, IQ4_NL, IQ4_XS and MXFP4).
// The 16 bytes go to both lanes with the load itself (vbroadcasti128), and one variable shift moves the high
// lane's nibbles down (a dword shift brings the next byte's low bits in above them; the mask drops them):
// one instruction fewer than shifting a copy and inserting it as the high lane.
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
}

// A 16-level grid (core/quant.h's kIQ4Grid, kMXFP4Grid) with `offset` added to each level, as the byte table
// grid_levels shuffles (offset 128 wraps the levels into unsigned bytes).
struct ByteTable {
    alignas(16) int8_t v[16];
};
constexpr ByteTable offset_grid(const int8_t (&grid)[16], int offset) {
    ByteTable t{};
    for (int i = 0; i < 16; ++i) t.v[i] = int8_t(uint8_t(grid[i] + offset));
    return t;
}

// A group's 16 bytes of nibbles as their 32 table entries: one byte shuffle (the table fits a 128-bit lane).
inline __m256i grid_levels(const uint8_t* qs, const ByteTable& table) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(table.v)));
    return _mm256_shuffle_epi8(t, unpack_nibbles(qs));
}

// Without VNNI, the u8 x s8 pair sums of signed weights v (eight interleaved rows, lane n row n's four) against
// x's four values broadcast in x4: |v| times x4 with v's sign moved onto it, each pair at most 2 x 128 x 127 =
// 32512, widened to int32 at once by vpmaddwd with w16 (ones, or a per-row int16 scale pair).
inline __m256i signed_rows8_dot4(__m256i v, __m256i x4, __m256i w16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(x4, v)), w16);
}

// 4-bit grid indices of eight interleaved rows as the rows8 layouts keep them (rows8_layout.h's IQ4_NL
// record, rows8_k_layout.h's IQ4_XS sub-blocks): four 32-byte chunks, chunk m's bytes 4n .. 4n + 3 being row n's
// bytes 4m .. 4m + 3 of its 16 (low nibbles values 4m .., high nibbles values 16 + 4m ..). Gives their grid
// entries (`grid`: the 16-byte table in both 128-bit lanes) as u[m] and u[m + 4], the vectors that
// dot_rows8_vnni and signed_rows8_dot4 read.
inline void grid_rows8(const uint8_t* q, __m256i grid, __m256i (&u)[8]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    TESSERA_UNROLL for (int m = 0; m < 4; ++m) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * m));
        u[m] = _mm256_shuffle_epi8(grid, _mm256_and_si256(v, low4));
        u[m + 4] = _mm256_shuffle_epi8(grid, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    }
}

#if TESSERA_QDOT_VNNI
#define TESSERA_QDOT_AVX512 1

// lo in the low 256 bits, hi in the high.
inline __m512i join256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m512 join_ps(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(lo)), _mm256_set1_ps(hi), 1);
}
inline __m256 lo_ps(__m512 v) { return _mm512_castps512_ps256(v); }
inline __m256 hi_ps(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
inline __m256i hi_si(__m512i v) { return _mm512_extracti64x4_epi64(v, 1); }

// A 32-value group of eight interleaved rows (the rows8 strips: vector g holds, in lane n, row n's values
// 4g .. 4g + 3 as unsigned bytes) against x's 32 values, four at a time broadcast to every lane: vectors
// 0..3 summed into d0, 4..7 into d1 (on top of what they hold), two chains so that VPDPBUSD's latency does
// not bound the loop.
inline void dot_rows8_vnni(const __m256i (&u)[8], const int8_t* x, __m256i& d0, __m256i& d1) {
    TESSERA_UNROLL for (int g = 0; g < 4; ++g) {
        int32_t lo, hi;
        std::memcpy(&lo, x + 4 * g, 4);
        std::memcpy(&hi, x + 4 * (g + 4), 4);
        d0 = _mm256_dpbusd_epi32(d0, u[g], _mm256_set1_epi32(lo));
        d1 = _mm256_dpbusd_epi32(d1, u[g + 4], _mm256_set1_epi32(hi));
    }
}
// The same, one vector: the eight rows' dots on top of `from`.
inline __m256i dot_rows8_vnni(const __m256i (&u)[8], const int8_t* x, __m256i from) {
    __m256i d1 = _mm256_setzero_si256();
    dot_rows8_vnni(u, x, from, d1);
    return _mm256_add_epi32(from, d1);
}
#endif

#endif  // TESSERA_QDOT_AVX2

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
