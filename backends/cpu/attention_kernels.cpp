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

#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::attn {

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
void reduce_each(const Batch* acc, float* sums) {
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

}  // namespace tessera::cpu::attn
