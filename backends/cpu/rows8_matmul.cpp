// Q4_0, Q8_0 and IQ4_NL weights in the interleaved-rows layout (rows8_layout.h) x Q8_0 activation rows.
//
// Per strip (8 weight rows) and block, the record's value bytes make eight vectors u_g (g < 8), lane n
// holding row n's values 4g .. 4g + 3 (Q4_0: the nibbles, q + 8, 0..15; Q8_0 and IQ4_NL's levels with VNNI: + 128). For each
// activation column, x's values 4g .. 4g + 3 are broadcast to every lane and
//     dot_n = sum_g sum_i u_g[n, i] * x[4g + i] - offset * sum(x)     (the offset taken out once per block)
// lands in lane n: the eight rows' dots are one vector in row order, so the int -> float conversion, the
// scale product (the eight rows' f16 scales widen in one instruction) and the FMA are one each per block and
// column for eight rows. Without VNNI, VPMADDUBSW's int16 pair sums must not saturate: see Q4_0Rows and
// Q8_0Rows below for how each type keeps them in range.
//
// What depends on the column alone (d_x as float, -offset * sum(x)) is computed once per panel and column,
// not once per strip.
#include "backends/cpu/rows8_matmul.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/decode_runs.h"
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

// What the strip kernels need of a weight type: the offset its stored values carry as VPDPBUSD's unsigned
// operand (the offset times sum(x) comes off after, once per block and column), the block's eight VNNI rows
// made ready once for all columns (unpack), and one column's eight row dots from them (dot): lane n of the
// result is row n's integer dot, exactly.
struct Q4_0Rows {
    static constexpr DType kType = DType::Q4_0;
    static constexpr int32_t kOffset = 8;  // the nibble is value + 8
    struct Block {
        __m256i u[8];  // VNNI row g: lane n holds row n's values 4g .. 4g + 3, as nibbles
    };
    static Block unpack(const uint8_t* q) {
        const __m256i low = _mm256_set1_epi8(0x0F);
        Block w;
        TESSERA_UNROLL for (int m = 0; m < 4; ++m) {
            const __m256i v = loadu256(q + 32 * m);
            w.u[m] = _mm256_and_si256(v, low);
            w.u[m + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        }
        return w;
    }
    static __m256i dot(const Block& w, const int8_t* x, __m256i corr) {
#if TESSERA_QDOT_VNNI
        return dot_rows8_vnni(w.u, x, corr);
#else  // pairs of at most 2 * 15 * 128 = 3840, eight of them summed in int16: 30720 < 32768
        __m256i s = _mm256_maddubs_epi16(w.u[0], bcast4(x));
        TESSERA_UNROLL for (int g = 1; g < 8; ++g) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w.u[g], bcast4(x + 4 * g)));
        return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), corr);
#endif
    }
};

struct Q8_0Rows {
    static constexpr DType kType = DType::Q8_0;
#if TESSERA_QDOT_VNNI
    static constexpr int32_t kOffset = 128;  // value + 128 (the sign bit flipped) as the unsigned operand
    struct Block {
        __m256i u[8];
    };
    static Block unpack(const uint8_t* q) {
        Block w;
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) w.u[g] = _mm256_xor_si256(loadu256(q + 32 * g), _mm256_set1_epi8(char(0x80)));
        return w;
    }
    static __m256i dot(const Block& w, const int8_t* x, __m256i corr) {
        return dot_rows8_vnni(w.u, x, corr);
    }
#else
    // Without VNNI, |w| times x with w's sign moved onto x (VPMADDUBSW's unsigned operand must be |w|): a
    // pair is at most 2 * 128 * 127 = 32512, so each group's pairs widen to int32 before they are added. Eight
    // more registers for |w| would not leave room for the columns: the values are read again from L1.
    static constexpr int32_t kOffset = 0;
    struct Block {
        const uint8_t* q;
    };
    static Block unpack(const uint8_t* q) { return {q}; }
    static __m256i dot(const Block& w, const int8_t* x, __m256i) {
        const __m256i ones16 = _mm256_set1_epi16(1);
        __m256i d = _mm256_setzero_si256();
        TESSERA_UNROLL for (int g = 0; g < 8; ++g)
            d = _mm256_add_epi32(d, signed_rows8_dot4(loadu256(w.q + 32 * g), bcast4(x + 4 * g), ones16));
        return d;
    }
#endif
};

// IQ4_NL: Q4_0's record, each nibble an index into kIQ4Grid (levels -127 .. 113), looked up for eight rows
// with one byte shuffle per vector. With VNNI the levels are taken as unsigned bytes, + 128, as Q8_0's values
// are; without it, Q8_0's |w| times x signed by w, from the looked-up levels in registers.
struct IQ4_NLRows {
    static constexpr DType kType = DType::IQ4_NL;
    static constexpr int32_t kOffset = kVnni ? 128 : 0;
    static constexpr ByteTable kGrid = offset_grid(kIQ4Grid, kOffset);
    struct Block {
        __m256i u[8];  // VNNI row g: lane n holds row n's levels 4g .. 4g + 3
    };
    static Block unpack(const uint8_t* q) {
        Block w;
        grid_rows8(q, _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kGrid.v))), w.u);
        return w;
    }
    static __m256i dot(const Block& w, const int8_t* x, __m256i corr) {
#if TESSERA_QDOT_VNNI
        return dot_rows8_vnni(w.u, x, corr);
#else  // pairs of at most 2 * 127 * 127 = 32258: each vector's widen to int32 on their own
        (void)corr;
        const __m256i ones16 = _mm256_set1_epi16(1);
        __m256i d = _mm256_setzero_si256();
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) d = _mm256_add_epi32(d, signed_rows8_dot4(w.u[g], bcast4(x + 4 * g), ones16));
        return d;
#endif
    }
};

// Per block b and column c < C (entry b * C + c): d_x as float and -offset * sum(x).
void column_terms(int64_t nblocks, const char* a, size_t a_stride, int C, int32_t offset, float* dx, int32_t* ncorr) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int c = 0; c < C; ++c) {
        const auto* x = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride);
        for (int64_t b = 0; b < nblocks; ++b) {
            const __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, loadu256(x[b].qs)), ones16);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            dx[b * C + c] = h2f(x[b].d);
            ncorr[b * C + c] = -offset * _mm_cvtsi128_si32(s);
        }
    }
}

// Decode reads each weight once, at the speed memory delivers it, and one core's hardware prefetch alone keeps
// too few lines in flight for that (measured on the amx level's decode, amx_matmul.cpp): the record this far
// ahead is asked for while one is computed.
constexpr size_t kPrefetchRecords = 8;

// One strip (8 weight rows, `rows` of them real) x C activation columns over nblocks blocks; column c's
// eight results go to out + c * out_stride.
template <class W, int C>
void strip(int64_t nblocks, const uint8_t* strip, const char* a, size_t a_stride, const float* dx,
           const int32_t* ncorr, float* out, size_t out_stride, int rows) {
    const size_t rec = L::record_bytes(W::kType);
    const int8_t* xq[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) xq[c] = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride)->qs;
    __m256 acc[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* r = strip + size_t(b) * rec;
        prefetch_ahead(r, rec, kPrefetchRecords * rec);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r)));
        const typename W::Block w = W::unpack(r + L::kScaleBytes);
        TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            const int8_t* x = xq[c] + b * int64_t(sizeof(block_q8_0));
            const __m256i d = W::dot(w, x, _mm256_set1_epi32(ncorr[b * C + c]));
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
// s * strip_bytes; its eight results at out + s * out_step), the strips' records read in turn: S streams in
// flight rather than one, which one core's prefetching alone did not cover (tg32 Q4_0, TinyLlama-1.1B shape,
// 2 threads, Xeon at the avx2 level: one strip 35.9-36.1 tok/s, two 41.3-41.6, four 42.7; avx512 35.1-36.2
// -> 42.8-43.2). The integers and float steps are strip<W, 1>'s, so the bits are too.
template <class W, int S>
void strips_one(int64_t nblocks, const uint8_t* strip0, size_t strip_bytes, const char* a, const float* dx,
                const int32_t* ncorr, float* out, size_t out_step) {
    const size_t rec = L::record_bytes(W::kType);
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
            const __m256i d = W::dot(W::unpack(r + L::kScaleBytes), x, corr);
            acc[s] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(dw, sx), acc[s]);
        }
    }
    TESSERA_UNROLL for (int s = 0; s < S; ++s) _mm256_storeu_ps(out + size_t(s) * out_step, acc[s]);
}

using StripFn = void (*)(int64_t, const uint8_t*, const char*, size_t, const float*, const int32_t*, float*, size_t, int);
using StripsOneFn = void (*)(int64_t, const uint8_t*, size_t, const char*, const float*, const int32_t*, float*, size_t);

template <class W>
StripFn strip_fn(int C) {
    static_assert(kPassCols == 8, "strip_fn: extend the switch");
    switch (C) {
        case 1: return strip<W, 1>;
        case 2: return strip<W, 2>;
        case 3: return strip<W, 3>;
        case 4: return strip<W, 4>;
        case 5: return strip<W, 5>;
        case 6: return strip<W, 6>;
        case 7: return strip<W, 7>;
        default: return strip<W, 8>;
    }
}

// The kernels of weight type W.
struct TypeKernels {
    int32_t offset;
    StripFn (*strip_for)(int C);
    StripsOneFn four, two;
};
template <class W>
constexpr TypeKernels kernels_of() {
    return {W::kOffset, strip_fn<W>, strips_one<W, 4>, strips_one<W, 2>};
}
const TypeKernels& kernels_for(DType t) {
    static constexpr TypeKernels kQ4_0 = kernels_of<Q4_0Rows>(), kQ8_0 = kernels_of<Q8_0Rows>(),
                                 kIQ4_NL = kernels_of<IQ4_NLRows>();
    return t == DType::Q8_0 ? kQ8_0 : t == DType::IQ4_NL ? kIQ4_NL : kQ4_0;
}

}  // namespace

bool rows8_compiled() { return true; }

size_t rows8_scratch_floats(const MatmulJob& job) { return size_t(2 * (job.k / L::kBlockValues) * kPassCols + 16); }

void rows8_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch) {
    TESSERA_CHECK(L::repackable(job.wtype) && r0 % L::kStripRows == 0, "rows8 matmul: %s weights, rows from %lld",
                  type_name(job.wtype), (long long)r0);
    const TypeKernels& kern = kernels_for(job.wtype);
    const int64_t nb = job.k / L::kBlockValues;
    const size_t strip_bytes = size_t(nb) * L::record_bytes(job.wtype);
    const auto* w = reinterpret_cast<const uint8_t*>(job.w);
    float* dx = scratch;
    auto* ncorr = reinterpret_cast<int32_t*>(scratch + nb * kPassCols);
    for (int64_t j0 = 0; j0 < job.m; j0 += kPassCols) {
        const int C = int(std::min<int64_t>(kPassCols, job.m - j0));
        const char* a = qact + size_t(j0) * qstride;
        column_terms(nb, a, qstride, C, kern.offset, dx, ncorr);
        const StripFn f = kern.strip_for(C);
        int64_t row = r0;
        if (C == 1) {
            // The full strips four at a time from runs far apart (decode_runs.h), those left over two at a
            // time, then the strip loop below.
            const auto at = [&](int64_t r) { return w + size_t(r / L::kStripRows) * strip_bytes; };
            float* out = job.out + j0 * int64_t(job.out_stride);
            row = r0 + L::kStripRows * decode_in_runs((r1 - r0) / L::kStripRows, 4, [&](int64_t i, int64_t run) {
                      const int64_t first = r0 + i * L::kStripRows;
                      kern.four(nb, at(first), size_t(run) * strip_bytes, a, dx, ncorr, out + first,
                                size_t(run * L::kStripRows));
                  });
            for (; row + 2 * L::kStripRows <= r1; row += 2 * L::kStripRows)
                kern.two(nb, at(row), strip_bytes, a, dx, ncorr, out + row, L::kStripRows);
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
