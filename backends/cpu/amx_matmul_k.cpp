// The amx level's K-quant matmul (Q4_K, Q5_K, Q6_K): weights repacked at load (amx_repack_k.h says why the
// layout is what it is), activations quantized to Q8_K rows. Per super-block of 256 values and sub-block s
// (32 values; Q6_K: 16) one tile product
//     C (up to 16 activation rows x 16 weight rows, int32) = A (those rows' int8 sub-block) x B (the panel's)
// is added times the weight rows' sub-block scales into an int32 sum; once per super-block that sum, and for
// Q4_K/Q5_K the min term (the weight rows' mins times the activations' exact sums of each 16, bsums), are
// scaled to fp32:
//     out += da * d * isum  -  da * dmin * imin           (two fused multiply-adds)
// Everything before that is exact integer arithmetic (|isum| < 2^31: at most 8 x 63 x 32 x 31 x 127 for
// Q5_K, 16 x 128 x 16 x 32 x 127 for Q6_K), so the only rounding is the fp32 accumulation, once per super-
// block. Decode (one activation row) takes AVX-512 VNNI dot products on the packed panel instead of tiles
// (amx_gemv_k.cpp) and gives the bits of the same row in a batch.
//
// A panel is widened once (values to int8 - Q6_K's minus 32 -, scales and mins decoded to int32, d and dmin
// to float) into per-thread scratch and reused for every group of 16 activation rows. Edges as in
// amx_matmul.cpp: a group of fewer than 16 rows gets tiles configured with that many rows, and the zero
// padding rows of a last partial panel are computed and not written.
#include "backends/cpu/amx_matmul_k.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

#include "backends/cpu/amx_k_simd.h"
#include "backends/cpu/amx_matmul.h"
#include "backends/cpu/amx_repack.h"
#include "backends/cpu/amx_repack_k.h"
#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/quant_dot.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"

// GCC 12 reports the AVX-512 intrinsics' deliberately undefined pass-through operands as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tessera::cpu::TESSERA_CPU_LEVEL {

#if TESSERA_X86_AMX

namespace {

namespace L = amx_layout;
constexpr int kRows = 16;                         // activation rows per tile product (M)
constexpr int kN = L::kPanelRows;                 // weight rows per panel (N)
constexpr size_t kSbBytes = size_t(QK_K) * kN;     // one super-block of a panel widened: 4096 int8
constexpr int kMaxSubs = QK_K / 16;               // Q6_K's 16 sub-blocks
constexpr size_t kQsOffset = offsetof(block_q8_K, qs);

int sub_width(DType t) { return t == DType::Q6_K ? 16 : 32; }
int subs(DType t) { return QK_K / sub_width(t); }
bool has_mins(DType t) { return t != DType::Q6_K; }

// Two sets of tiles, so that one sub-block's product runs while the previous one's result is scaled (a tile
// store waits for its product, and tiles are not renamed; with one set, every sub-block paid the product's
// whole latency). Set 0: tile 0 C, `rows` x 16 int32; tile 1 A, `rows` x `width` int8; tile 2 B, width / 4 x
// 64 (VNNI). Set 1: tiles 3, 4, 5 likewise.
void configure(int rows, int width) {
    TileConfig c;
    for (int set = 0; set < 2; ++set) {
        c.rows[3 * set] = uint8_t(rows);
        c.colsb[3 * set] = 4 * kN;
        c.rows[3 * set + 1] = uint8_t(rows);
        c.colsb[3 * set + 1] = uint16_t(width);
        c.rows[3 * set + 2] = uint8_t(width / 4);
        c.colsb[3 * set + 2] = 4 * kN;
    }
    tile_memory_barrier();
    _tile_loadconfig(&c);
}

// Sub-block j's 6-bit scale and min from a Q4_K/Q5_K block's 12 packed bytes (j < 4: low six bits of bytes
// j and j + 4; j >= 4: a nibble of byte j + 4 with the top two bits of byte j - 4 / j above it). The scalar
// expectation's; the kernels decode 16 rows at once (amx_k_simd.h).
void scale_min(const uint8_t* p, int j, int32_t* sc, int32_t* mn) {
    if (j < 4) {
        *sc = p[j] & 63;
        *mn = p[j + 4] & 63;
    } else {
        *sc = (p[j + 4] & 0xF) | ((p[j - 4] >> 6) << 4);
        *mn = (p[j + 4] >> 4) | ((p[j] >> 6) << 4);
    }
}

// One panel, widened for the tiles: super-block b's B tiles at vals + b * 4096 (sub-block s of width w at
// + s * w * 16), its scales at sc[(b * subs + s) * 16 + n], d and dmin at [b * 16 + n]. Mins (Q4_K/Q5_K) at
// mn[(b * 8 + s) * 16 + n], each twice in one int32 (min | min << 16): VPDPWSSD then multiplies it by an
// activation's pair of bsums (the two 16-value sums of sub-block s, one dword of block_q8_K::bsums) and adds
// both products, which is the min's share of imin in one instruction.
struct KPanel {
    int8_t* vals;
    int32_t* sc;
    int32_t* mn;
    float* d;
    float* dmin;
};

KPanel carve(float* scratch, int64_t nsb) {
    KPanel w;
    w.vals = reinterpret_cast<int8_t*>(scratch);
    w.sc = reinterpret_cast<int32_t*>(scratch + size_t(nsb) * kSbBytes / sizeof(float));
    w.mn = w.sc + size_t(nsb) * kMaxSubs * kN;
    w.d = reinterpret_cast<float*>(w.mn + size_t(nsb) * kMaxSubs * kN);
    w.dmin = w.d + size_t(nsb) * kN;
    return w;
}
size_t panel_floats(int64_t nsb) { return size_t(nsb) * (kSbBytes / sizeof(float) + 2 * kMaxSubs * kN + 2 * kN); }

void widen_panel(DType t, const uint8_t* panel, int64_t nsb, const KPanel& w) {
    const size_t rec = L::k_record_bytes(t);
    const L::KRecordParts part = L::k_record_parts(t);
    const int S = subs(t);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int64_t b = 0; b < nsb; ++b) {
        const uint8_t* r = panel + size_t(b) * rec;
        _mm512_storeu_ps(w.d + b * kN, amx_k::halves(r + part.d));
        if (has_mins(t)) {
            _mm512_storeu_ps(w.dmin + b * kN, amx_k::halves(r + part.dmin));
            const amx_k::SixBitScales six = amx_k::six_bit_scales(amx_k::scale_words(r + part.scales));
            for (int s = 0; s < S; ++s) {
                _mm512_storeu_si512(w.sc + (b * S + s) * kN, amx_k::byte_lane(six.sc_word(s), s % 4));
                _mm512_storeu_si512(w.mn + (b * S + s) * kN, amx_k::byte_pair(six.mn_word(s), s % 4));  // m in both halves
            }
        } else {
            // (a plain loop: the compiler widens it with VPMOVSXBD, which SIMDe 0.7.4, the emulated twin's, lacks)
            for (int i = 0; i < S * kN; ++i) w.sc[b * S * kN + i] = int8_t(r[part.scales + size_t(i)]);
        }
        int8_t* o = w.vals + size_t(b) * kSbBytes;
        for (int c = 0; c < QK_K / 32; ++c, o += 512) {  // chunk c: 256 nibble bytes -> 512 VNNI bytes (8 rows of 64)
            const uint8_t* nib = r + part.nibbles + size_t(c) * 256;
            for (int g = 0; g < 8; ++g) {  // VNNI row g: low nibbles of nibble row g (g < 4), high ones of g - 4
                const __m512i v = _mm512_loadu_si512(nib + 64 * (g % 4));
                __m512i q = _mm512_and_si512(g < 4 ? v : _mm512_srli_epi16(v, 4), low4);
                if (t == DType::Q5_K) {  // fifth bit of VNNI byte 64g + i: bit g of plane byte i
                    const __m512i hi = _mm512_loadu_si512(r + part.high + size_t(c) * 64);
                    q = _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hi, unsigned(g)), _mm512_set1_epi8(1)), 4));
                } else if (t == DType::Q6_K) {  // bits 4, 5 of VNNI byte 64g + i: byte (64g + i) % 128, bits 2 (g / 2)
                    const __m512i hi = _mm512_loadu_si512(r + part.high + size_t(c) * 128 + 64 * (g % 2));
                    const __m512i up = _mm512_and_si512(_mm512_srli_epi16(hi, unsigned(2 * (g / 2))), _mm512_set1_epi8(3));
                    q = _mm512_sub_epi8(_mm512_or_si512(q, _mm512_slli_epi16(up, 4)), _mm512_set1_epi8(32));
                }
                _mm512_storeu_si512(o + 64 * g, q);
            }
        }
    }
}

// acc[m * 16 + n] = the dots of the `rows` Q8_K activation rows at act (stride astride) with the panel's 16
// rows; tiles configured for (rows, sub_width(t)). Full: rows == 16, so the row loops have a constant count.
// Per lane the float operations are the scalar expectation's, in its order: (da * d) then one fused
// multiply-add of isum, (da * dmin) then one of -imin; everything before them is exact integer arithmetic,
// so its order is free.
//
// The sub-blocks of all super-blocks are one sequence i = b * subs + s, run through the two tile sets in
// turn (subs is even): product i + 1 is issued before product i is stored and scaled.
template <bool Full>
void panel_product(DType t, const KPanel& w, int64_t nsb, const char* act, size_t astride, int rows, float* acc,
                   int32_t* c) {
    const int W = sub_width(t), S = subs(t);
    const int R = Full ? kRows : rows;
    const int64_t total = nsb * S;
    std::fill(acc, acc + kRows * kN, 0.0f);
    __m512i isum[kRows];  // one zmm per activation row, lanes = the panel's weight rows
#pragma GCC unroll 16
    for (int m = 0; m < kRows; ++m) isum[m] = _mm512_setzero_si512();

    // Sub-block i's B (i = b * S + s; a super-block's S sub-blocks of W * 16 bytes are its 4096), sub-block s
    // of super-block b's A.
    auto b_tile = [&](int64_t i) { return w.vals + size_t(i) * size_t(W * kN); };
    auto a_tile = [&](int64_t b, int s) { return act + size_t(b) * sizeof(block_q8_K) + kQsOffset + size_t(s * W); };
    // Sub-block i's scales times C (just stored at c) into isum: written out in the loop below rather than
    // as a function so that the 16 sums stay in registers.
#define TESSERA_AMX_K_SCALE(i)                                                                                  \
    do {                                                                                                       \
        const __m512i sc = _mm512_loadu_si512(w.sc + (i) * kN);                                                \
        _Pragma("GCC unroll 16") for (int m = 0; m < R; ++m) isum[m] =                                         \
            _mm512_add_epi32(isum[m], _mm512_mullo_epi32(_mm512_loadu_si512(c + m * kN), sc));                 \
    } while (0)

    tile_memory_barrier();  // the widened panel is written before the tiles load it
    _tile_loadd(2, b_tile(0), 4 * kN);
    _tile_loadd(1, a_tile(0, 0), long(astride));
    _tile_zero(0);
    _tile_dpbssd(0, 1, 2);
    for (int64_t b = 0; b < nsb; ++b) {
        for (int s = 0; s < S; s += 2) {
            const int64_t i = b * S + s;
            _tile_loadd(5, b_tile(i + 1), 4 * kN);
            _tile_loadd(4, a_tile(b, s + 1), long(astride));
            _tile_zero(3);
            _tile_dpbssd(3, 4, 5);
            _tile_stored(0, c, 4 * kN);
            tile_memory_barrier();  // the loads of c read what the tile store wrote
            TESSERA_AMX_K_SCALE(i);
            if (i + 2 < total) {
                _tile_loadd(2, b_tile(i + 2), 4 * kN);
                _tile_loadd(1, s + 2 < S ? a_tile(b, s + 2) : a_tile(b + 1, 0), long(astride));
                _tile_zero(0);
                _tile_dpbssd(0, 1, 2);
            }
            tile_memory_barrier();  // the tile store must not pass the loads of c above
            _tile_stored(3, c, 4 * kN);
            tile_memory_barrier();
            TESSERA_AMX_K_SCALE(i + 1);
        }
        // The super-block's float step into acc, and fresh sums.
        const __m512 d = _mm512_loadu_ps(w.d + b * kN);
        const __m512 dmin = has_mins(t) ? _mm512_loadu_ps(w.dmin + b * kN) : _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int m = 0; m < R; ++m) {
            const auto* ab = reinterpret_cast<const block_q8_K*>(act + size_t(m) * astride) + b;
            const __m512 da = _mm512_set1_ps(ab->d);
            __m512 a = _mm512_loadu_ps(acc + m * kN);
            a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(da, d), a);
            if (has_mins(t)) {
                __m512i imin = _mm512_setzero_si512();
                for (int s = 0; s < 8; ++s) {
                    int32_t pair;  // bsums[2s] | bsums[2s + 1] << 16
                    std::memcpy(&pair, ab->bsums + 2 * s, 4);
                    imin = _mm512_dpwssd_epi32(imin, _mm512_loadu_si512(w.mn + (b * 8 + s) * kN), _mm512_set1_epi32(pair));
                }
                a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), imin)), _mm512_mul_ps(da, dmin), a);
            }
            _mm512_storeu_ps(acc + m * kN, a);
            isum[m] = _mm512_setzero_si512();
        }
    }
#undef TESSERA_AMX_K_SCALE
}

// What panel_product computes for weight row `row` and one activation row, in scalar code straight from the
// GGUF blocks (the packed panel is read back through the layout's own inverse): the self-check's expectation.
float scalar_product(DType t, const uint8_t* packed, int64_t nsb, int64_t row, const char* act) {
    const size_t rec = L::k_record_bytes(t), bb = type_traits(t).block_bytes, rb = size_t(nsb) * bb;
    std::vector<uint8_t> rows(size_t(kN) * rb);
    L::unpack(t, packed + size_t(row / kN) * size_t(nsb) * rec, kN, nsb * QK_K, rows.data(), rb);
    const uint8_t* r = rows.data() + size_t(row % kN) * rb;
    float acc = 0;
    for (int64_t b = 0; b < nsb; ++b) {
        const auto* ab = reinterpret_cast<const block_q8_K*>(act) + b;
        const uint8_t* blk = r + size_t(b) * bb;
        int32_t isum = 0, imin = 0;
        float d, dmin = 0;
        if (t == DType::Q6_K) {
            const auto* q = reinterpret_cast<const block_q6_K*>(blk);
            d = fp16_to_fp32(q->d);
            for (int v = 0; v < QK_K; ++v) {  // dequantize_row_q6_K's value order
                const int h = v / 128, quarter = (v % 128) / 32, l = v % 32;
                const int lo = q->ql[64 * h + l + 32 * (quarter & 1)] >> (quarter < 2 ? 0 : 4);
                const int val = ((lo & 0xF) | (((q->qh[32 * h + l] >> (2 * quarter)) & 3) << 4)) - 32;
                isum += q->scales[v / 16] * val * ab->qs[v];
            }
        } else {
            const auto* q = reinterpret_cast<const block_q4_K*>(blk);  // Q5_K starts the same way
            const uint8_t* qs = t == DType::Q4_K ? q->qs : reinterpret_cast<const block_q5_K*>(blk)->qs;
            d = fp16_to_fp32(q->d);
            dmin = fp16_to_fp32(q->dmin);
            for (int s = 0; s < 8; ++s) {
                int32_t sc, mn, dot = 0;
                scale_min(q->scales, s, &sc, &mn);
                for (int l = 0; l < 32; ++l) {
                    int val = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0xF;
                    if (t == DType::Q5_K) val |= ((reinterpret_cast<const block_q5_K*>(blk)->qh[l] >> s) & 1) << 4;
                    dot += val * ab->qs[32 * s + l];
                }
                isum += sc * dot;
                imin += mn * (ab->bsums[2 * s] + ab->bsums[2 * s + 1]);
            }
        }
        acc = std::fma(float(isum), ab->d * d, acc);
        if (t != DType::Q6_K) acc = std::fma(float(-imin), ab->d * dmin, acc);
    }
    return acc;
}

}  // namespace

size_t amx_k_scratch_floats(const MatmulJob& job) {
    // acc (16 x 16 float), C (16 x 16 int32), the widened panel, alignment slack
    return 2 * size_t(kRows) * kN + panel_floats(job.k / QK_K) + 16;
}

void amx_panel_k(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch) {
    const DType t = job.wtype;
    const int64_t nsb = job.k / QK_K;
    const size_t rec = L::k_record_bytes(t);
    float* acc = scratch;
    auto* c = reinterpret_cast<int32_t*>(acc + kRows * kN);
    const KPanel w = carve(reinterpret_cast<float*>(c + kRows * kN), nsb);
    const auto* packed = reinterpret_cast<const uint8_t*>(job.w);
    // Decode: VNNI dot products on the packed panels (amx_gemv_k.cpp), same bits, each weight unpacked once
    // for several rows.
    if (job.m <= kAmxDecodeMaxRows) {
        const int m = int(job.m);
        amx_decode_panels(job, r0, std::min(r1, job.n), packed, size_t(nsb) * rec, amx_gemv_k_side_by_side(m), acc,
                          [&](const uint8_t* first, size_t stride, int panels, float* out) {
                              amx_gemv_k(t, first, stride, nsb, qact, qstride, m, panels, out);
                          });
        return;
    }
    int configured = 0;
    for (int64_t p = r0 / kN; p * kN < r1; ++p) {
        const int64_t row0 = p * kN;
        const int valid = int(std::min<int64_t>(kN, std::min(r1, job.n) - row0));
        widen_panel(t, packed + size_t(p) * size_t(nsb) * rec, nsb, w);
        for (int64_t j0 = 0; j0 < job.m; j0 += kRows) {
            const int rows = int(std::min<int64_t>(kRows, job.m - j0));
            if (rows != configured) {
                configure(rows, sub_width(t));
                configured = rows;
            }
            if (rows == kRows)
                panel_product<true>(t, w, nsb, qact + size_t(j0) * qstride, qstride, rows, acc, c);
            else
                panel_product<false>(t, w, nsb, qact + size_t(j0) * qstride, qstride, rows, acc, c);
            for (int m = 0; m < rows; ++m) {
                float* o = job.out + (j0 + m) * int64_t(job.out_stride) + row0;
                for (int n = 0; n < valid; ++n) o[n] = acc[m * kN + n];
            }
        }
    }
    if (configured) _tile_release();
}

std::string amx_k_self_check() {
    try {
        std::mt19937 rng(20261203);
        for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K})
            for (int64_t m : {kAmxDecodeMaxRows + 3, int64_t(5), int64_t(1)}) {  // tiles (a partial group), then decode
                const int64_t n = 20, k = 512;
                std::vector<float> wf(size_t(n * k)), xf(size_t(m * k));
                std::uniform_real_distribution<float> u(-1.0f, 1.0f);
                for (auto& v : wf) v = u(rng);
                for (auto& v : xf) v = u(rng);
                // Each 16 weights on their own scale, so the sub-block scales and mins take many values (all
                // their bits matter) rather than all landing near the largest.
                for (size_t i = 0; i < wf.size(); i += 16) {
                    const float f = 0.02f + std::fabs(u(rng));
                    for (size_t j = i; j < i + 16; ++j) wf[j] *= f;
                }
                const std::string why = amx_check_repacked_panel(t, n, k, m, wf, xf, amx_panel_k, amx_k_scratch_floats, scalar_product);
                if (!why.empty()) return why;
            }
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

#else  // no tiles at this level

size_t amx_k_scratch_floats(const MatmulJob&) { return 0; }
void amx_panel_k(const MatmulJob&, int64_t, int64_t, const char*, size_t, float*) {
    throw Error("cpu backend: K-quant weights repacked for AMX tiles reached a kernel level without them", Status::Unsupported);
}
std::string amx_k_self_check() { return "this kernel level has no AMX tiles"; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
