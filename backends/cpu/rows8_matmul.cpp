// Q4_0 weights in the interleaved-rows layout (rows8_layout.h) x Q8_0 activation rows.
//
// Per strip (8 weight rows) and block, the 128 nibble bytes unpack into eight vectors u_g (g < 8), lane n
// holding row n's values 4g .. 4g + 3 (as q + 8, 0..15). For each activation column, x's values 4g .. 4g + 3
// are broadcast to every lane and
//     dot_n = sum_g sum_i u_g[n, i] * x[4g + i] - 8 * sum(x)     (the offset taken out once per block)
// lands in lane n: the eight rows' dots are one vector in row order, so the int -> float conversion, the
// scale product (the eight rows' f16 scales widen in one instruction) and the FMA are one each per block and
// column for eight rows. Without VNNI the u8 x s8 pair sums are added in int16 before one widening: a pair
// is at most 2 * 15 * 128 = 3840 in size, eight of them 30720 < 32768.
//
// What depends on the column alone (d_x as float, -8 * sum(x)) is computed once per panel and column, not
// once per strip.
#include "backends/cpu/rows8_matmul.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/quant_dot_kernels.h"
#include "backends/cpu/rows8_layout.h"
#include "core/error.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

#if TESSERA_QDOT_AVX2

namespace {

namespace L = rows8_layout;
using namespace qdot;

constexpr int kPassCols = 8;  // activation columns per pass over a strip: a decode batch of up to 8 sequences unpacks each block once

inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Per block b and column c < C (entry b * C + c): d_x as float and -8 * sum(x).
void column_terms(int64_t nblocks, const char* a, size_t a_stride, int C, float* dx, int32_t* ncorr) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int c = 0; c < C; ++c) {
        const auto* x = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride);
        for (int64_t b = 0; b < nblocks; ++b) {
            const __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, loadu256(x[b].qs)), ones16);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            dx[b * C + c] = h2f(x[b].d);
            ncorr[b * C + c] = -8 * _mm_cvtsi128_si32(s);
        }
    }
}

// Decode reads each weight once, at the speed memory delivers it, and one core's hardware prefetch alone keeps
// too few lines in flight for that (measured on the amx level's decode, amx_matmul.cpp): the record this far
// ahead is asked for while one is computed.
constexpr size_t kPrefetchRecords = 8;

// One strip (8 weight rows, `rows` of them real) x C activation columns over nblocks blocks; column c's
// eight results go to out + c * out_stride.
template <int C>
void strip_q4_0(int64_t nblocks, const uint8_t* strip, const char* a, size_t a_stride, const float* dx,
                const int32_t* ncorr, float* out, size_t out_stride, int rows) {
    const size_t rec = L::record_bytes(DType::Q4_0);
    const __m256i low = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i ones16 = _mm256_set1_epi16(1);
    const int8_t* xq[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) xq[c] = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride)->qs;
    __m256 acc[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* r = strip + size_t(b) * rec;
        prefetch_ahead(r, rec, kPrefetchRecords * rec);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r)));
        __m256i u[8];
        TESSERA_UNROLL for (int m = 0; m < 4; ++m) {
            const __m256i v = loadu256(r + L::kScaleBytes + 32 * m);
            u[m] = _mm256_and_si256(v, low);
            u[m + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            const int8_t* x = xq[c] + b * int64_t(sizeof(block_q8_0));
            const __m256i corr = _mm256_set1_epi32(ncorr[b * C + c]);
#if TESSERA_QDOT_VNNI
            __m256i d = corr;
            TESSERA_UNROLL for (int g = 0; g < 8; ++g) d = _mm256_dpbusd_epi32(d, u[g], bcast4(x + 4 * g));
#else
            __m256i s = _mm256_maddubs_epi16(u[0], bcast4(x));
            TESSERA_UNROLL for (int g = 1; g < 8; ++g) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(u[g], bcast4(x + 4 * g)));
            const __m256i d = _mm256_add_epi32(_mm256_madd_epi16(s, ones16), corr);
#endif
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(dw, _mm256_set1_ps(dx[b * C + c])), acc[c]);
        }
    }
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        if (rows == L::kStripRows) {
            _mm256_storeu_ps(out + size_t(c) * out_stride, acc[c]);
        } else {
            alignas(32) float v[8];
            _mm256_store_ps(v, acc[c]);
            std::memcpy(out + size_t(c) * out_stride, v, size_t(rows) * sizeof(float));
        }
    }
}

// Decode of one sequence: one activation column against S full strips side by side (strip s at strip0 +
// s * strip_bytes; its eight results at out + 8 s), the strips' records read in turn: S streams in flight
// rather than one, which one core's prefetching alone did not cover (tg32 Q4_0, TinyLlama-1.1B shape,
// 2 threads, Xeon at the avx2 level: one strip 35.9-36.1 tok/s, two 41.3-41.6, four 42.7; avx512 35.1-36.2
// -> 42.8-43.2). The integers and float steps are strip_q4_0<1>'s, so the bits are too.
template <int S>
void strips_q4_0_one(int64_t nblocks, const uint8_t* strip0, size_t strip_bytes, const char* a, const float* dx,
                     const int32_t* ncorr, float* out) {
    const size_t rec = L::record_bytes(DType::Q4_0);
    const __m256i low = _mm256_set1_epi8(0x0F);
    const int8_t* xq = reinterpret_cast<const block_q8_0*>(a)->qs;
    __m256 acc[S];
    TESSERA_UNROLL for (int s = 0; s < S; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblocks; ++b) {
        const int8_t* x = xq + b * int64_t(sizeof(block_q8_0));
        const __m256i corr = _mm256_set1_epi32(ncorr[b]);
        const __m256 sx = _mm256_set1_ps(dx[b]);
        TESSERA_UNROLL for (int s = 0; s < S; ++s) {
            const uint8_t* r = strip0 + size_t(s) * strip_bytes + size_t(b) * rec;
            prefetch_ahead(r, rec, kPrefetchRecords * rec);
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r)));
#if TESSERA_QDOT_VNNI
            __m256i d0 = corr, d1 = _mm256_setzero_si256();
            TESSERA_UNROLL for (int m = 0; m < 4; ++m) {
                const __m256i v = loadu256(r + L::kScaleBytes + 32 * m);
                d0 = _mm256_dpbusd_epi32(d0, _mm256_and_si256(v, low), bcast4(x + 4 * m));
                d1 = _mm256_dpbusd_epi32(d1, _mm256_and_si256(_mm256_srli_epi16(v, 4), low), bcast4(x + 4 * (m + 4)));
            }
            const __m256i d = _mm256_add_epi32(d0, d1);
#else
            __m256i t = _mm256_setzero_si256();
            TESSERA_UNROLL for (int m = 0; m < 4; ++m) {
                const __m256i v = loadu256(r + L::kScaleBytes + 32 * m);
                t = _mm256_add_epi16(t, _mm256_maddubs_epi16(_mm256_and_si256(v, low), bcast4(x + 4 * m)));
                t = _mm256_add_epi16(t, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), bcast4(x + 4 * (m + 4))));
            }
            const __m256i d = _mm256_add_epi32(_mm256_madd_epi16(t, _mm256_set1_epi16(1)), corr);
#endif
            acc[s] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(dw, sx), acc[s]);
        }
    }
    TESSERA_UNROLL for (int s = 0; s < S; ++s) _mm256_storeu_ps(out + 8 * s, acc[s]);
}

using StripFn = void (*)(int64_t, const uint8_t*, const char*, size_t, const float*, const int32_t*, float*, size_t, int);

StripFn strip_fn(int C) {
    static_assert(kPassCols == 8, "strip_fn: extend the switch");
    switch (C) {
        case 1: return strip_q4_0<1>;
        case 2: return strip_q4_0<2>;
        case 3: return strip_q4_0<3>;
        case 4: return strip_q4_0<4>;
        case 5: return strip_q4_0<5>;
        case 6: return strip_q4_0<6>;
        case 7: return strip_q4_0<7>;
        default: return strip_q4_0<8>;
    }
}

}  // namespace

bool rows8_compiled() { return true; }

size_t rows8_scratch_floats(const MatmulJob& job) { return size_t(2 * (job.k / L::kBlockValues) * kPassCols + 16); }

void rows8_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch) {
    TESSERA_CHECK(job.wtype == DType::Q4_0 && r0 % L::kStripRows == 0, "rows8 matmul: %s weights, rows from %lld",
                  type_name(job.wtype), (long long)r0);
    const int64_t nb = job.k / L::kBlockValues;
    const size_t strip_bytes = size_t(nb) * L::record_bytes(job.wtype);
    const auto* w = reinterpret_cast<const uint8_t*>(job.w);
    float* dx = scratch;
    auto* ncorr = reinterpret_cast<int32_t*>(scratch + nb * kPassCols);
    for (int64_t j0 = 0; j0 < job.m; j0 += kPassCols) {
        const int C = int(std::min<int64_t>(kPassCols, job.m - j0));
        const char* a = qact + size_t(j0) * qstride;
        column_terms(nb, a, qstride, C, dx, ncorr);
        const StripFn f = strip_fn(C);
        int64_t row = r0;
        if (C == 1) {  // four full strips at a time, then two, then the strip_q4_0 loop below
            for (const int S : {4, 2})
                for (; row + S * L::kStripRows <= r1; row += S * L::kStripRows) {
                    const uint8_t* s0 = w + size_t(row / L::kStripRows) * strip_bytes;
                    float* o = job.out + j0 * int64_t(job.out_stride) + row;
                    if (S == 4)
                        strips_q4_0_one<4>(nb, s0, strip_bytes, a, dx, ncorr, o);
                    else
                        strips_q4_0_one<2>(nb, s0, strip_bytes, a, dx, ncorr, o);
                }
        }
        for (; row < r1; row += L::kStripRows)
            f(nb, w + size_t(row / L::kStripRows) * strip_bytes, a, qstride, dx, ncorr,
              job.out + j0 * int64_t(job.out_stride) + row, job.out_stride,
              int(std::min<int64_t>(L::kStripRows, r1 - row)));
    }
}

#else  // no AVX2: the cpu backend does not make the layout at this level, and mul_mat_ok refuses it

bool rows8_compiled() { return false; }
size_t rows8_scratch_floats(const MatmulJob&) { return 0; }
void rows8_panel(const MatmulJob&, int64_t, int64_t, const char*, size_t, float*) {
    TESSERA_CHECK(false, "rows8 matmul: this cpu level has no kernels for interleaved-rows weights");
}

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
