// xsimd inner loops of the cpu attention; see attention_kernels.h.
#include "backends/cpu/attention_kernels.h"

// GCC 12 warns "__Y is used uninitialized" inside its own AVX-512 intrinsic headers wherever they are inlined
// (a known false positive, GCC PR 105593); silence just that warning here.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__) || defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::attn {

namespace {

using Batch = xsimd::batch<float>;
constexpr int kL = int(Batch::size);

// Converts n (a multiple of 16 or not) halfs to floats.
void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
#endif
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
#if defined(__aarch64__)
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src + i));
        vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
    }
#endif
    for (; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

// Dequantizes n elements (a multiple of 32) of Q8_0: value = d * q, the same float product as the reference.
void q8_0_to_f32(const block_q8_0* blocks, float* dst, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const float d = fp16_to_fp32(blocks[b].d);
        const int8_t* qs = blocks[b].qs;
        float* out = dst + b * QK8_0;
#if defined(__AVX512F__)
        const __m512 vd = _mm512_set1_ps(d);
        for (int h = 0; h < QK8_0; h += 16) {
            const __m512i q32 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + h)));
            _mm512_storeu_ps(out + h, _mm512_mul_ps(_mm512_cvtepi32_ps(q32), vd));
        }
#elif defined(__AVX2__)
        const __m256 vd = _mm256_set1_ps(d);
        for (int h = 0; h < QK8_0; h += 8) {
            const __m256i q32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + h)));
            _mm256_storeu_ps(out + h, _mm256_mul_ps(_mm256_cvtepi32_ps(q32), vd));
        }
#elif defined(__aarch64__)
        for (int h = 0; h < QK8_0; h += 8) {
            const int16x8_t q16 = vmovl_s8(vld1_s8(qs + h));
            vst1q_f32(out + h, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q16))), d));
            vst1q_f32(out + h + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(q16)), d));
        }
#else
        for (int h = 0; h < QK8_0; ++h) out[h] = d * float(qs[h]);
#endif
    }
}

float dot(const float* a, const float* b, int64_t dp) {
    Batch acc(0.0f);
    for (int64_t c = 0; c < dp; c += kL) acc = xsimd::fma(Batch::load_unaligned(a + c), Batch::load_unaligned(b + c), acc);
    return xsimd::hadd(acc);
}

// sums[i] = total of the lanes of acc[i], for kL accumulators. (xsimd 8.1's haddp would do this, but its
// AVX-512 version returns the sums in a permuted order, so it is not used.)
[[gnu::always_inline]] inline void reduce_each(const Batch* acc, float* sums) {
#if defined(__AVX512F__)
    if constexpr (kL == 16) {
        // transpose-and-add: pairs, then quads within each 128-bit lane, then across the four lanes
        __m512 t[8];
        for (int i = 0; i < 8; ++i) {
            const __m512 a = acc[2 * i], b = acc[2 * i + 1];
            t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        }
        __m512 u[4];  // u[i], in every 128-bit lane: partial sums of acc[4i .. 4i+3]
        for (int i = 0; i < 4; ++i) {
            const __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
            u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
        }
        const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
        const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
        _mm512_store_ps(sums, _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                                            _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1))));
        return;
    }
#endif
#if defined(__aarch64__)
    if constexpr (kL == 4) {
        // vpaddq(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3]; twice gives the four totals in order.
        vst1q_f32(sums, vpaddq_f32(vpaddq_f32(acc[0], acc[1]), vpaddq_f32(acc[2], acc[3])));
        return;
    }
#endif
    for (int i = 0; i < kL; ++i) sums[i] = xsimd::hadd(acc[i]);
}

// R query rows x (kL / R) keys at once: kL accumulators, reduced together by one haddp.
template <int R>
void score_block(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t dp, float* s, int64_t lds) {
    constexpr int K = kL / R;
    static_assert(R * K == kL, "block must fill one register of sums");
    Batch acc[kL];
    for (auto& a : acc) a = Batch(0.0f);
    for (int64_t c = 0; c < dp; c += kL) {
        Batch kv[K];
        for (int j = 0; j < K; ++j) kv[j] = Batch::load_unaligned(k + j * ldk + c);
        for (int r = 0; r < R; ++r) {
            const Batch qv = Batch::load_unaligned(q + r * ldq + c);
            for (int j = 0; j < K; ++j) acc[r * K + j] = xsimd::fma(qv, kv[j], acc[r * K + j]);
        }
    }
    alignas(64) float sums[kL];
    reduce_each(acc, sums);
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < K; ++j) s[r * lds + j] = sums[r * K + j];
}

template <int R>
void score_rows(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t n, int64_t dp, float* s,
                int64_t lds) {
    constexpr int K = kL / R;
    int64_t j = 0;
    for (; j + K <= n; j += K) score_block<R>(q, ldq, k + j * ldk, ldk, dp, s + j, lds);
    for (; j < n; ++j)
        for (int r = 0; r < R; ++r) s[r * lds + j] = dot(q + r * ldq, k + j * ldk, dp);
}

// R output rows x C registers of columns, accumulated over all n keys in registers.
template <int R, int C>
void pv_block(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t n, float* o, int64_t ldo) {
    Batch acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = Batch::load_unaligned(o + r * ldo + c * kL);
    for (int64_t j = 0; j < n; ++j) {
        Batch vv[C];
        for (int c = 0; c < C; ++c) vv[c] = Batch::load_unaligned(v + j * ldv + c * kL);
        for (int r = 0; r < R; ++r) {
            const Batch pr(p[r * ldp + j]);
            for (int c = 0; c < C; ++c) acc[r][c] = xsimd::fma(pr, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c].store_unaligned(o + r * ldo + c * kL);
}

template <int R, int C>
void pv_rows(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t n, int64_t dp, float* o,
             int64_t ldo) {
    int64_t c = 0;
    for (; c + C * kL <= dp; c += C * kL) pv_block<R, C>(p, ldp, v + c, ldv, n, o + c, ldo);
    for (; c < dp; c += kL) pv_block<R, 1>(p, ldp, v + c, ldv, n, o + c, ldo);
}

}  // namespace

// ---- streaming kernels ----

namespace {

// kL floats of a cache row of type T starting at element c (c a multiple of kL; for q8_0 kL divides 32).
template <DType T>
[[gnu::always_inline]] inline Batch load_chunk(const char* row, int64_t c) {
    if constexpr (T == DType::F32) {
        return Batch::load_unaligned(reinterpret_cast<const float*>(row) + c);
    } else if constexpr (T == DType::F16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(row) + c;
#if defined(__AVX512F__)
        if constexpr (kL == 16) return Batch(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h))));
#endif
#if defined(__F16C__)
        if constexpr (kL == 8) return Batch(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))));
#endif
#if defined(__aarch64__)
        if constexpr (kL == 4) return Batch(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))));
#endif
        alignas(64) float tmp[kL];
        for (int i = 0; i < kL; ++i) tmp[i] = fp16_to_fp32(h[i]);
        return Batch::load_aligned(tmp);
    } else {
        static_assert(T == DType::Q8_0 && QK8_0 % kL == 0, "q8_0 chunks must not straddle blocks");
        const block_q8_0& b = reinterpret_cast<const block_q8_0*>(row)[c / QK8_0];
        const int8_t* qs = b.qs + c % QK8_0;
#if defined(__F16C__)
        const float d = _cvtsh_ss(b.d);
#else
        const float d = fp16_to_fp32(b.d);
#endif
#if defined(__AVX512F__)
        if constexpr (kL == 16)
            return Batch(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs))))) *
                   Batch(d);
#endif
#if defined(__AVX2__)
        if constexpr (kL == 8)
            return Batch(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs))))) *
                   Batch(d);
#endif
#if defined(__aarch64__)
        if constexpr (kL == 4) {
            // 4 int8 -> int32 (the widening loads want 8; read 4 bytes into the low lanes instead)
            int32_t four;
            std::memcpy(&four, qs, 4);
            const int16x8_t q16 = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)));
            return Batch(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q16)))) * Batch(d);
        }
#endif
        alignas(64) float tmp[kL];
        for (int i = 0; i < kL; ++i) tmp[i] = float(qs[i]);
        return Batch::load_aligned(tmp) * Batch(d);
    }
}

// Software prefetch for the streaming kernels. The cache rows of key j + distance are requested while key j
// is being computed, one cache line per load of the current row, so the requests are spread evenly over
// the arithmetic: a burst of requests for whole keys at once stalls the loads the arithmetic is waiting on.
// The requests go to L2 (hint T1; Zen 4 and recent Intel honour it): the core has only ~two dozen L1 miss
// buffers, which caps prefetches into L1 at roughly 10 GB/s per core, while L2 keeps far more lines in flight.
// That cap is what held GQA decode back: with 4x the arithmetic per byte of MHA it cannot lean on the
// hardware prefetcher's run-ahead the way the pure streaming MHA loop does. L2 hits are then cheap enough for
// the out-of-order core to hide. ~32 KiB ahead covers the memory latency at the rates these loops read
// (GQA-8 decode at 16K, 1 thread: no prefetch 8.5 ms, T0 16 KiB 6.3 ms, T1 16-32 KiB 4.4-4.9 ms).
constexpr int64_t kPrefetchBytes = 32768;
constexpr int kPrefetchLocality = 2;  // __builtin_prefetch's locality 2 = T1 (into L2)

int64_t prefetch_keys(int64_t n_heads, size_t row) {
    return std::max<int64_t>(1, kPrefetchBytes / std::max<int64_t>(n_heads * int64_t(row), 1));
}

// Requests the cache line holding element c of a row of type T, once per line: at the chunk that starts
// it (F32/F16 rows start on a line boundary whenever the head stride is a multiple of 64; a q8_0 block is
// shorter than a line, so a request per block start reaches every line).
template <DType T>
inline void prefetch_chunk(const char* row, int64_t c) {
    if constexpr (T == DType::F32) {
        if ((c * 4) % 64 == 0) __builtin_prefetch(row + c * 4, 0, kPrefetchLocality);
    } else if constexpr (T == DType::F16) {
        if ((c * 2) % 64 == 0) __builtin_prefetch(row + c * 2, 0, kPrefetchLocality);
    } else {
        if (c % QK8_0 == 0) __builtin_prefetch(row + c / QK8_0 * int64_t(sizeof(block_q8_0)), 0, kPrefetchLocality);
    }
}

// sums[i] = lane total of acc[i] for i < N (any N), kL at a time.
template <int N>
[[gnu::always_inline]] inline void reduce_n(const Batch* acc, float* sums) {
    for (int g = 0; g < N; g += kL) {
        Batch part[kL];
        for (int i = 0; i < kL; ++i) part[i] = g + i < N ? acc[g + i] : Batch(0.0f);
        reduce_each(part, sums + g);
    }
}

// Keys per score block for R rows per head: R x K dots fill one register of sums (kL), so the block's dots
// are reduced together straight from registers; K capped so kv + accumulators fit the register file.
template <int R>
constexpr int kScoreKeys = std::max(1, std::min(kL / R, kL >= 16 ? 8 : 4));

// Scores of keys [0, K) (rows k * stride_j apart from krow) against the R query rows of one head:
// sh[r * lds + k]. Each K chunk is converted once and used by all R rows.
template <DType T, int R, int K>
[[gnu::always_inline]] inline void score_keys(const char* krow, size_t stride_j, int64_t d, const float* qh, int64_t ldq, int64_t pf_off,
                       float* sh, int64_t lds) {
    Batch acc[R * K];
    for (auto& a : acc) a = Batch(0.0f);
    for (int64_t c = 0; c < d; c += kL) {
        Batch kv[K];
        for (int k = 0; k < K; ++k) kv[k] = load_chunk<T>(krow + k * int64_t(stride_j), c);
        if (pf_off)
            for (int k = 0; k < K; ++k) prefetch_chunk<T>(krow + k * int64_t(stride_j) + pf_off, c);
        for (int r = 0; r < R; ++r) {
            const Batch qv = Batch::load_unaligned(qh + r * ldq + c);
            for (int k = 0; k < K; ++k) acc[r * K + k] = xsimd::fma(qv, kv[k], acc[r * K + k]);
        }
    }
    alignas(64) float sums[(R * K + kL - 1) / kL * kL];
    reduce_n<R * K>(acc, sums);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) sh[r * lds + k] = sums[r * K + k];
}

template <DType T, int R>
void stream_scores_t(const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads,
                     int64_t d, const float* q, int64_t ldq, int64_t head_rows, float* s, int64_t lds) {
    constexpr int K = kScoreKeys<R>;
    const int64_t ahead = prefetch_keys(n_heads, row_bytes(T, d));
    int64_t j = 0;
    for (; j + K <= nk; j += K) {
        const int64_t pf_off = j + K + ahead <= n_after ? ahead * int64_t(stride_j) : 0;
        for (int64_t h = 0; h < n_heads; ++h)
            score_keys<T, R, K>(base + j * int64_t(stride_j) + h * int64_t(stride_h), stride_j, d,
                                q + h * head_rows * ldq, ldq, pf_off, s + h * head_rows * lds + j, lds);
    }
    for (; j < nk; ++j)
        for (int64_t h = 0; h < n_heads; ++h)
            score_keys<T, R, 1>(base + j * int64_t(stride_j) + h * int64_t(stride_h), stride_j, d,
                                q + h * head_rows * ldq, ldq, 0, s + h * head_rows * lds + j, lds);
}

// Keys per pv block: the output registers are loaded and stored once per block, not once per key.
constexpr int kPvKeys = 8;
// Output column registers per row in a pv block: R x C accumulators stay in registers over the block's keys.
template <int R>
constexpr int kPvCols = kL >= 16 ? (R <= 2 ? 8 : R <= 4 ? 4 : 2) : (R <= 2 ? 4 : R <= 4 ? 2 : 1);

// O[r][c0, c0 + C kL) of one head += sum over keys k < K of P[r][k] V(k)[c0, c0 + C kL). Each V chunk is
// converted once and used by all R rows; the weights are broadcast once per key and row.
template <DType T, int R, int C, int K>
[[gnu::always_inline]] inline void pv_keys(const char* vrow, size_t stride_j, int64_t c0, const float* ph, int64_t ldp, int64_t pf_off,
                    float* oh, int64_t ldo) {
    Batch acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = Batch::load_unaligned(oh + r * ldo + c0 + c * kL);
    for (int k = 0; k < K; ++k) {
        const char* row = vrow + k * int64_t(stride_j);
        Batch vv[C];
        for (int c = 0; c < C; ++c) vv[c] = load_chunk<T>(row, c0 + c * kL);
        if (pf_off)
            for (int c = 0; c < C; ++c) prefetch_chunk<T>(row + pf_off, c0 + c * kL);
        for (int r = 0; r < R; ++r) {
            const Batch pr(ph[r * ldp + k]);
            for (int c = 0; c < C; ++c) acc[r][c] = xsimd::fma(pr, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c].store_unaligned(oh + r * ldo + c0 + c * kL);
}

// All d columns of one head for keys [0, K): C registers at a time, then single registers for the rest.
template <DType T, int R, int K>
[[gnu::always_inline]] inline void pv_head(const char* vrow, size_t stride_j, int64_t d, const float* ph, int64_t ldp, int64_t pf_off,
                    float* oh, int64_t ldo) {
    bool any = false;
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) any |= ph[r * ldp + k] != 0.0f;
    if (!any) return;  // masked for every row: skip reading these rows at all
    constexpr int C = kPvCols<R>;
    int64_t c0 = 0;
    for (; c0 + C * kL <= d; c0 += C * kL) pv_keys<T, R, C, K>(vrow, stride_j, c0, ph, ldp, pf_off, oh, ldo);
    for (; c0 < d; c0 += kL) pv_keys<T, R, 1, K>(vrow, stride_j, c0, ph, ldp, pf_off, oh, ldo);
}

template <DType T, int R>
void stream_pv_t(const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads,
                 int64_t d, const float* p, int64_t ldp, int64_t head_rows, float* o, int64_t ldo) {
    constexpr int K = kPvKeys;
    const int64_t ahead = prefetch_keys(n_heads, row_bytes(T, d));
    int64_t j = 0;
    for (; j + K <= nk; j += K) {
        const int64_t pf_off = j + K + ahead <= n_after ? ahead * int64_t(stride_j) : 0;
        for (int64_t h = 0; h < n_heads; ++h)
            pv_head<T, R, K>(base + j * int64_t(stride_j) + h * int64_t(stride_h), stride_j, d,
                             p + h * head_rows * ldp + j, ldp, pf_off, o + h * head_rows * ldo, ldo);
    }
    for (; j < nk; ++j)
        for (int64_t h = 0; h < n_heads; ++h)
            pv_head<T, R, 1>(base + j * int64_t(stride_j) + h * int64_t(stride_h), stride_j, d,
                             p + h * head_rows * ldp + j, ldp, 0, o + h * head_rows * ldo, ldo);
}

// Calls f.template operator()<T, R>() for the runtime type and row count.
template <class F>
void dispatch_stream(DType t, int64_t rows, F&& f) {
    auto by_rows = [&]<DType T>() {
        switch (rows) {
            case 1: return f.template operator()<T, 1>();
            case 2: return f.template operator()<T, 2>();
            case 3: return f.template operator()<T, 3>();
            case 4: return f.template operator()<T, 4>();
            case 5: return f.template operator()<T, 5>();
            case 6: return f.template operator()<T, 6>();
            case 7: return f.template operator()<T, 7>();
            case 8: return f.template operator()<T, 8>();
            default: throw Error("attention: streaming kernel takes 1..8 rows per head");
        }
    };
    switch (t) {
        case DType::F32: return by_rows.template operator()<DType::F32>();
        case DType::F16: return by_rows.template operator()<DType::F16>();
        case DType::Q8_0: return by_rows.template operator()<DType::Q8_0>();
        default: throw Error(std::string("attention: cpu backend cannot read a ") + type_name(t) + " cache");
    }
}

}  // namespace

void stream_scores(DType t, const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads, int64_t d,
                   const float* q, int64_t ldq, int64_t rows, int64_t head_rows, float* s, int64_t lds) {
    dispatch_stream(t, rows, [&]<DType T, int R>() {
        stream_scores_t<T, R>(base, stride_j, stride_h, nk, n_after, n_heads, d, q, ldq, head_rows, s, lds);
    });
}

void stream_pv(DType t, const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads, int64_t d,
               const float* p, int64_t ldp, int64_t rows, int64_t head_rows, float* o, int64_t ldo) {
    dispatch_stream(t, rows, [&]<DType T, int R>() {
        stream_pv_t<T, R>(base, stride_j, stride_h, nk, n_after, n_heads, d, p, ldp, head_rows, o, ldo);
    });
}

int64_t lanes() { return kL; }

int64_t padded(int64_t d) { return (d + kL - 1) / kL * kL; }

void row_to_f32(DType t, const void* src, int64_t n, float* dst, int64_t n_padded) {
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); break;
        case DType::F16: f16_to_f32(static_cast<const uint16_t*>(src), dst, n); break;
        case DType::Q8_0:
            TESSERA_CHECK(n % QK8_0 == 0, "attention: q8_0 row of %lld values is not whole blocks", (long long)n);
            q8_0_to_f32(static_cast<const block_q8_0*>(src), dst, n);
            break;
        default: throw Error(std::string("attention: cpu backend cannot read a ") + type_name(t) + " cache");
    }
    std::fill(dst + n, dst + n_padded, 0.0f);
}

void scores(const float* q, int64_t ldq, int64_t m, const float* k, int64_t ldk, int64_t n, int64_t dp, float* s,
            int64_t lds) {
    constexpr int R = kL >= 4 ? 4 : kL;
    int64_t r = 0;
    for (; r + R <= m; r += R) score_rows<R>(q + r * ldq, ldq, k, ldk, n, dp, s + r * lds, lds);
    for (; r < m; ++r) score_rows<1>(q + r * ldq, ldq, k, ldk, n, dp, s + r * lds, lds);
}

void apply_softcap(float* x, int64_t n, float cap) {
    const Batch vcap(cap), inv(1.0f / cap);
    int64_t i = 0;
    for (; i + kL <= n; i += kL) (vcap * xsimd::tanh(Batch::load_unaligned(x + i) * inv)).store_unaligned(x + i);
    for (; i < n; ++i) x[i] = cap * std::tanh(x[i] * (1.0f / cap));
}

float softmax_step(float* s, int64_t n, float* m, float* l) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    Batch vmax(kNegInf);
    int64_t i = 0;
    for (; i + kL <= n; i += kL) vmax = xsimd::max(vmax, Batch::load_unaligned(s + i));
    alignas(64) float lane_max[kL];
    vmax.store_aligned(lane_max);
    float tile_max = *std::max_element(lane_max, lane_max + kL);
    for (; i < n; ++i) tile_max = std::max(tile_max, s[i]);
    if (tile_max == kNegInf) {  // nothing visible in this tile for this row: it adds nothing
        std::fill(s, s + n, 0.0f);
        return 1.0f;
    }
    const float m_new = std::max(*m, tile_max);
    const float factor = std::exp(*m - m_new);  // 0 when *m was -inf (and then *l and the output are 0 anyway)
    const Batch vm(m_new);
    Batch vsum(0.0f);
    i = 0;
    for (; i + kL <= n; i += kL) {
        // exp(-inf) is 0: masked scores drop out
        const Batch e = xsimd::exp(Batch::load_unaligned(s + i) - vm);
        e.store_unaligned(s + i);
        vsum += e;
    }
    float sum = xsimd::hadd(vsum);
    for (; i < n; ++i) {
        s[i] = std::exp(s[i] - m_new);
        sum += s[i];
    }
    *l = *l * factor + sum;
    *m = m_new;
    return factor;
}

void scale_row(float* o, int64_t dp, float f) {
    const Batch vf(f);
    for (int64_t c = 0; c < dp; c += kL) (Batch::load_unaligned(o + c) * vf).store_unaligned(o + c);
}

void accumulate_pv(const float* p, int64_t ldp, int64_t m, const float* v, int64_t ldv, int64_t n, int64_t dp,
                   float* o, int64_t ldo) {
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) pv_rows<4, 4>(p + r * ldp, ldp, v, ldv, n, dp, o + r * ldo, ldo);
    for (; r < m; ++r) pv_rows<1, 8>(p + r * ldp, ldp, v, ldv, n, dp, o + r * ldo, ldo);
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::attn
