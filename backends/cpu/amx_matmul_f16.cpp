// The amx level's matmul on F16 and BF16 weights (amx_repack_f16.h's layout) on AMX BF16 tiles.
//
// Precision: TDPBF16PS multiplies BF16 values (8 significant bits) and sums in fp32. F16 weights have 11
// significant bits, so plain conversion would round every weight (relative error up to 2^-9), and rounding
// the activations to BF16 adds as much again. Instead each operand is split exactly or nearly so into two
// BF16 parts, x = xh + xl (amx_layout::split_bf16):
//   F16 weight w = wh + wl exactly (wl holds the 3 bits BF16 lacks), fp32 activation x = xh + xl to 2^-17,
//   and per 32-value block three tile products  C += xh.wh + xh.wl + xl.wh.
// The term left out, xl.wl, is at most 2^-16 |x w|; with the activations' 2^-17 that is 2^-15 |x w| per term
// in the worst case, and far less in practice. Measured on the golden files' real F16 weights (every 2-D F16
// matrix of llama-gqa-f16 and gemma2-f16, first 256 rows, 16 gaussian activation rows, against a double
// product; relative rms of the outputs): plain BF16 weights and activations (one product) 2.4e-3; exact weights
// times BF16 activations (two) 1.7e-3; this split (three) 3.7e-6 (1.1e-5 with hi truncated instead of
// rounded); llama.cpp's own F16 path (exact weights, activations rounded to F16) 2.1e-4. The one- and
// two-product options would be 10x less accurate than llama.cpp and ~500x less than the fp32 FMA kernel of
// the avx512 level this replaces (exact products); three keep fp32 quality for 3x the tile work of plain BF16, and tile throughput is not what bounds a prefill here
// (AMX does 16x the multiply-adds per cycle of AVX-512 fp32): reading and splitting the panels is.
// BF16 weights are exact in BF16 and go straight from the repacked panel to the tiles: C += xh.w + xl.w.
//
// Hardware arithmetic, as the Intel SDM states it for TDPBF16PS (and backends/cpu/amx_emu.h models it):
// products of BF16 pairs summed in fp32 with round-to-nearest-even whatever MXCSR says, denormal inputs read
// as zero and denormal results flushed to zero. An activation part below 2^-126 therefore counts as zero
// (an absolute error under 1e-38). The order of the additions inside one instruction is the hardware's, so
// this file's self-check bounds the error instead of asking for the bits of a scalar replica.
//
// A panel of F16 weights is split once (AVX-512) into per-thread scratch and reused for every group of 16
// activation rows; activations are split once per product, before the panels run (cpu_matmul.cpp). Fewer
// than kAmxF16TileMinRows activation rows (decode) skip the tiles: splitting a panel for one row would cost
// more than the row's multiply-adds, so they run AVX-512 fp32 FMAs over the same layout (16 weight rows'
// value pairs per 64 bytes), exact products of the weights and the fp32 activations.
#include "backends/cpu/amx_matmul_f16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

#include "backends/cpu/amx_repack_f16.h"
#include "backends/cpu/amx_tiles.h"
#include "core/error.h"
#include "core/half.h"

// GCC 12 reports the AVX-512 intrinsics' deliberately undefined pass-through operands as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace L = amx_layout;

size_t amx_f16_act_row_bytes(int64_t k) { return size_t(4 * L::f16_padded_k(k)); }

void amx_f16_split_activations(const float* x, int64_t k, void* dst) {
    const int64_t kp = L::f16_padded_k(k);
    auto* hi = static_cast<uint16_t*>(dst);
    uint16_t* lo = hi + kp;
    for (int64_t p = 0; p < k; ++p) L::split_bf16(x[p], hi + p, lo + p);
    for (int64_t p = k; p < kp; ++p) hi[p] = lo[p] = 0;
}

#if TESSERA_X86_AMX

namespace {

constexpr int kRows = 16;          // activation rows per tile product (M)
constexpr int kN = 16;             // weight rows per panel (N)
constexpr int64_t kBlockHalves = L::kPairBlockBytes / 2;  // 16-bit values of one B tile
constexpr int kBlockBytesK = 2 * L::kPairBlockValues;     // bytes of one block of one activation part

// Tile 0: C, `rows` x 16 fp32. Tiles 1, 2: A's high and low parts, `rows` x 32 bf16. Tiles 3, 4: B's high
// and low parts, 16 pair rows x 64 bytes.
void configure(int rows) {
    TileConfig c;
    for (int t : {0, 1, 2}) {
        c.rows[t] = uint8_t(rows);
        c.colsb[t] = 64;
    }
    for (int t : {3, 4}) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    tile_memory_barrier();
    _tile_loadconfig(&c);
}

// 16 F16 / BF16 values -> fp32 (exact), in two halves of 8: F16C and AVX2 have the widening instructions, and
// the emulated twin's SIMDe has no 512-bit ones.
template <bool F16>
__m512 load16(const uint16_t* p) {
    if constexpr (F16) {
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
        return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    } else {
        const __m256i lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m256i hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), 16));
    }
}

// An F16 panel's nb blocks split into BF16 high and low parts (split_bf16's arithmetic, which is exact for
// F16: lo is then x - hi itself, so truncating it to BF16 rounds nothing), 16 values at a time.
void split_panel_f16(const uint16_t* panel, int64_t nb, uint16_t* hi, uint16_t* lo) {
    const __m512i top = _mm512_set1_epi32(int(0xffff0000u)), half = _mm512_set1_epi32(0x7fff),
                  one = _mm512_set1_epi32(1), exp = _mm512_set1_epi32(0x7f800000);
    // 16-bit halves of 16 lanes holding (lo | hi << 16): the odd ones (hi) to the low 256 bits, the even (lo) up.
    const __m512i gather = _mm512_set_epi16(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0,  //
                                            31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int64_t i = 0; i < nb * kBlockHalves; i += 16) {
        const __m512 f = load16<true>(panel + i);
        const __m512i u = _mm512_castps_si512(f);
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        const __m512i h = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(half, odd)), top);
        const __m512i rest = _mm512_castps_si512(_mm512_sub_ps(f, _mm512_castsi512_ps(h)));
        const __mmask16 inf = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exp), exp);  // Inf: no low part
        const __m512i l = _mm512_maskz_and_epi32(__mmask16(~inf), rest, top);
        const __m512i both = _mm512_permutexvar_epi16(gather, _mm512_or_si512(h, _mm512_srli_epi32(l, 16)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i), _mm512_castsi512_si256(both));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i), _mm512_extracti64x4_epi64(both, 1));
    }
}

// c (rows x 16) = the split activation rows at act (stride astride; high parts, then the low parts kp values
// on) times the panel's B tiles: bhi and blo (F16: its split parts; BF16: blo null, bhi the panel itself).
void panel_tiles(const uint16_t* bhi, const uint16_t* blo, int64_t nb, const char* act, size_t astride, int64_t kp,
                 float* c) {
    tile_memory_barrier();
    _tile_zero(0);
    for (int64_t b = 0; b < nb; ++b) {
        _tile_loadd(1, act + b * kBlockBytesK, long(astride));
        _tile_loadd(2, act + 2 * kp + b * kBlockBytesK, long(astride));
        _tile_loadd(3, bhi + b * kBlockHalves, 64);
        _tile_dpbf16ps(0, 1, 3);
        _tile_dpbf16ps(0, 2, 3);
        if (blo) {
            _tile_loadd(4, blo + b * kBlockHalves, 64);
            _tile_dpbf16ps(0, 1, 4);
        }
    }
    _tile_stored(0, c, 64);
    tile_memory_barrier();
}

// Few activation rows: out[j * 16 + n] = dot(weight row n of the panel, activation row j), fp32 FMAs. 64
// bytes of a block are one pair of values for each of the 16 rows: rows 0..7 in the first 16 lanes loaded,
// rows 8..15 in the next, each lane pair multiplied by the activation's matching pair. Two pairs per step
// into separate accumulators: with one, decode waited on the FMA latency, not on memory.
// Decode reads each weight once, at the speed memory delivers it; one core's hardware prefetch alone kept too
// few lines in flight. Both 64-byte lines of a step are asked for this far ahead (tg16, TinyLlama-1.1B F16, 2
// threads: 11.3 tok/s with one line of the two at 2 KB; both lines at 1 KB 12.1, 2 KB 13.0, 4 KB 12.4).
constexpr size_t kPrefetchBytes = 2048;
// P panels side by side (panel p at panel0 + p * panel_halves; decode takes two: two streams of weights in
// flight per thread, each activation pair broadcast once for both). Row j's results for panel p at
// out + (j * P + p) * 16.
template <bool F16, int M, int P = 1>
void panel_small(const uint16_t* panel0, size_t panel_halves, int64_t k, const float* act, size_t as, float* out) {
    __m512 acc[M][P][4];
    for (auto& row : acc)
        for (auto& a : row)
            for (auto& v : a) v = _mm512_setzero_ps();
    const int64_t pairs = (k + 1) / 2;
    const auto pair_of = [&](int j, int64_t q) {  // activation values 2q, 2q + 1 of row j in every lane pair
        float pr[2] = {act[size_t(j) * as + size_t(2 * q)], 0.0f};
        if (2 * q + 1 < k) pr[1] = act[size_t(j) * as + size_t(2 * q + 1)];
        long long bits;
        std::memcpy(&bits, pr, 8);
        return _mm512_castsi512_ps(_mm512_set1_epi64(bits));
    };
    const auto weights_at = [&](int p, int64_t q) {
        return panel0 + size_t(p) * panel_halves + (q / 16) * kBlockHalves + (q % 16) * 32;
    };
    int64_t q = 0;
    for (; q + 1 < pairs; q += 2) {
        __m512 xa[M], xb[M];  // several panels: broadcast once for all (one: where used, fewer live registers)
        if constexpr (P > 1)
            for (int j = 0; j < M; ++j) xa[j] = pair_of(j, q), xb[j] = pair_of(j, q + 1);
        for (int p = 0; p < P; ++p) {
            const uint16_t* wa = weights_at(p, q);
            const uint16_t* wb = weights_at(p, q + 1);
            _mm_prefetch(reinterpret_cast<const char*>(wa) + kPrefetchBytes, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(wb) + kPrefetchBytes, _MM_HINT_T0);
            const __m512 a0 = load16<F16>(wa), a1 = load16<F16>(wa + 16), b0 = load16<F16>(wb), b1 = load16<F16>(wb + 16);
            for (int j = 0; j < M; ++j) {
                if constexpr (P == 1) xa[j] = pair_of(j, q), xb[j] = pair_of(j, q + 1);
                acc[j][p][0] = _mm512_fmadd_ps(a0, xa[j], acc[j][p][0]);
                acc[j][p][1] = _mm512_fmadd_ps(a1, xa[j], acc[j][p][1]);
                acc[j][p][2] = _mm512_fmadd_ps(b0, xb[j], acc[j][p][2]);
                acc[j][p][3] = _mm512_fmadd_ps(b1, xb[j], acc[j][p][3]);
            }
        }
    }
    if (q < pairs) {
        for (int p = 0; p < P; ++p) {
            const uint16_t* w = weights_at(p, q);
            const __m512 w0 = load16<F16>(w), w1 = load16<F16>(w + 16);
            for (int j = 0; j < M; ++j) {
                const __m512 x = pair_of(j, q);
                acc[j][p][0] = _mm512_fmadd_ps(w0, x, acc[j][p][0]);
                acc[j][p][1] = _mm512_fmadd_ps(w1, x, acc[j][p][1]);
            }
        }
    }
    for (int j = 0; j < M; ++j)
        for (int p = 0; p < P; ++p) {
            alignas(64) float t[32];
            _mm512_storeu_ps(t, _mm512_add_ps(acc[j][p][0], acc[j][p][2]));
            _mm512_storeu_ps(t + 16, _mm512_add_ps(acc[j][p][1], acc[j][p][3]));
            float* o = out + (j * P + p) * kN;
            for (int n = 0; n < kN; ++n) o[n] = t[2 * n] + t[2 * n + 1];
        }
}

template <bool F16>
void panel_small_rows(int m, const uint16_t* panel, int64_t k, const float* act, size_t as, float* out) {
    switch (m) {
        case 1: return panel_small<F16, 1>(panel, 0, k, act, as, out);
        case 2: return panel_small<F16, 2>(panel, 0, k, act, as, out);
        case 3: return panel_small<F16, 3>(panel, 0, k, act, as, out);
        default: return panel_small<F16, 4>(panel, 0, k, act, as, out);
    }
}

}  // namespace

size_t amx_f16_scratch_floats(const MatmulJob& job) {
    const size_t halves = size_t(L::f16_padded_k(job.k) / L::kPairBlockValues) * kBlockHalves;
    // C (16 x 16) or the small path's outputs (4 x 16), then an F16 panel's two parts.
    return size_t(kRows * kN) + (job.wtype == DType::F16 ? halves : 0) + 16;
}

void amx_panel_f16(const MatmulJob& job, int64_t r0, int64_t r1, const char* split, size_t sstride, float* scratch) {
    const bool f16 = job.wtype == DType::F16;
    TESSERA_CHECK(f16 || job.wtype == DType::BF16, "amx f16 matmul: weights of type %s", type_name(job.wtype));
    const int64_t kp = L::f16_padded_k(job.k), nb = kp / L::kPairBlockValues;
    const size_t panel_halves = size_t(nb * kBlockHalves);
    const auto* packed = reinterpret_cast<const uint16_t*>(job.w);
    float* c = scratch;
    auto* whi = reinterpret_cast<uint16_t*>(scratch + kRows * kN);
    uint16_t* wlo = whi + panel_halves;
    const bool tiles = amx_f16_uses_tiles(job);
    int configured = 0;
    for (int64_t p = r0 / kN; p * kN < r1; ++p) {
        const uint16_t* panel = packed + size_t(p) * panel_halves;
        const int64_t row0 = p * kN;
        const int valid = int(std::min<int64_t>(kN, std::min(r1, job.n) - row0));
        if (!tiles && job.m == 1 && (p + 1) * kN < std::min(r1, job.n)) {  // this panel and the next
            if (f16) panel_small<true, 1, 2>(panel, panel_halves, job.k, job.act, job.act_stride, c);
            else panel_small<false, 1, 2>(panel, panel_halves, job.k, job.act, job.act_stride, c);
            const int both = int(std::min<int64_t>(2 * kN, std::min(r1, job.n) - row0));
            for (int n = 0; n < both; ++n) job.out[row0 + n] = c[n];
            ++p;
            continue;
        }
        if (!tiles) {
            for (int64_t j0 = 0; j0 < job.m; j0 += 4) {
                const int rows = int(std::min<int64_t>(4, job.m - j0));
                const float* a = job.act + j0 * int64_t(job.act_stride);
                if (f16) panel_small_rows<true>(rows, panel, job.k, a, job.act_stride, c);
                else panel_small_rows<false>(rows, panel, job.k, a, job.act_stride, c);
                for (int m = 0; m < rows; ++m) {
                    float* o = job.out + (j0 + m) * int64_t(job.out_stride) + row0;
                    for (int n = 0; n < valid; ++n) o[n] = c[m * kN + n];
                }
            }
            continue;
        }
        const uint16_t* bhi = panel;
        const uint16_t* blo = nullptr;
        if (f16) {
            split_panel_f16(panel, nb, whi, wlo);
            bhi = whi;
            blo = wlo;
        }
        for (int64_t j0 = 0; j0 < job.m; j0 += kRows) {
            const int rows = int(std::min<int64_t>(kRows, job.m - j0));
            if (rows != configured) {
                configure(rows);
                configured = rows;
            }
            panel_tiles(bhi, blo, nb, split + size_t(j0) * sstride, sstride, kp, c);
            for (int m = 0; m < rows; ++m) {
                float* o = job.out + (j0 + m) * int64_t(job.out_stride) + row0;
                for (int n = 0; n < valid; ++n) o[n] = c[m * kN + n];
            }
        }
    }
    if (configured) _tile_release();
}

std::string amx_f16_self_check() {
    try {
        std::mt19937 rng(20261203);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (DType t : {DType::F16, DType::BF16})
            for (int64_t m : {19, 3})  // a full and a partial group of tile rows; the small-batch path
                for (int64_t k : {64, 45}) {
                    const int64_t n = 20;
                    std::vector<uint16_t> w(size_t(n * k)), packed(L::f16_packed_bytes(n, k) / 2);
                    std::vector<float> wf(w.size()), x(size_t(m * k)), out(size_t(m * n), NAN);
                    for (size_t i = 0; i < w.size(); ++i) {
                        w[i] = t == DType::F16 ? fp32_to_fp16(g(rng) * 0.1f) : fp32_to_bf16(g(rng) * 0.1f);
                        wf[i] = t == DType::F16 ? fp16_to_fp32(w[i]) : bf16_to_fp32(w[i]);
                    }
                    for (auto& v : x) v = g(rng);
                    L::repack_f16(w.data(), size_t(k) * 2, n, k, packed.data());
                    const size_t sstride = amx_f16_act_row_bytes(k);
                    std::vector<char> split(size_t(m) * sstride);
                    for (int64_t j = 0; j < m; ++j) amx_f16_split_activations(x.data() + j * k, k, split.data() + size_t(j) * sstride);
                    MatmulJob job;
                    job.wtype = t;
                    job.w = reinterpret_cast<const char*>(packed.data());
                    job.n = n;
                    job.k = k;
                    job.act = x.data();
                    job.act_stride = size_t(k);
                    job.m = m;
                    job.out = out.data();
                    job.out_stride = size_t(n);
                    job.amx_repacked = true;
                    std::vector<float> scratch(amx_f16_scratch_floats(job));
                    amx_panel_f16(job, 0, n, split.data(), sstride, scratch.data());
                    // The tiles' worst case (see the top of this file): 3 x 2^-17 of sum |w x|, plus fp32 sums.
                    const double per_term = (amx_f16_uses_tiles(job) ? 3 * std::ldexp(1.0, -17) : 0) + double(k + 4) * std::ldexp(1.0, -24);
                    for (int64_t j = 0; j < m; ++j)
                        for (int64_t r = 0; r < n; ++r) {
                            double want = 0, mag = 0;
                            for (int64_t p = 0; p < k; ++p) {
                                want += double(wf[size_t(r * k + p)]) * x[size_t(j * k + p)];
                                mag += std::fabs(double(wf[size_t(r * k + p)]) * x[size_t(j * k + p)]);
                            }
                            const float got = out[size_t(j * n + r)];
                            if (!(std::fabs(got - want) <= per_term * mag))
                                return format("%s %s (k %lld, %lld rows) gave %.9g at weight row %lld, activation row %lld; "
                                              "the exact product is %.9g",
                                              type_name(t), amx_f16_uses_tiles(job) ? "tile matmul" : "small batch", (long long)k,
                                              (long long)m, double(got), (long long)r, (long long)j, want);
                        }
                }
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

#else  // no tiles at this level

size_t amx_f16_scratch_floats(const MatmulJob&) { return 0; }
void amx_panel_f16(const MatmulJob&, int64_t, int64_t, const char*, size_t, float*) {
    throw Error("cpu backend: F16/BF16 weights repacked for AMX tiles reached a kernel level without them",
                Status::Unsupported);
}
std::string amx_f16_self_check() { return "this kernel level has no AMX tiles"; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
