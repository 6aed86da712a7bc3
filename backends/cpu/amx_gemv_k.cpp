// Decode (one to eight activation rows: the tokens of that many sequences) on K-quant weights in the amx
// layout (amx_repack_k.h), with AVX-512 VNNI instead of tiles: a 1-row tile product would use 1/16 of each,
// and widening a whole panel for a few rows would cost more than the dots themselves. The packed bytes are
// read in place. A chunk's VNNI row g (64 bytes: for each of the 16 weight rows its values 4g .. 4g + 3) is
// what VPDPBUSD takes with a broadcast of the activation's values 4g .. 4g + 3, giving the 16 rows' partial
// dots in the 16 int32 lanes. VPDPBUSD multiplies unsigned weights by signed activations, which is how the
// values are stored (Q6_K's offset of 32 comes off after, as
// 32 times the sub-block's activation sum, bsums). Per lane this is the integer the tile product gives, scaled
// by the same integer scales and the same float operations in the same order (amx_matmul_k.cpp), so a token's
// logits do not depend on whether it was decoded alone or in a batch.
#include "backends/cpu/amx_matmul_k.h"

#include <cstring>
#include <utility>

#include "backends/cpu/amx_k_simd.h"
#include "backends/cpu/amx_matmul.h"
#include "backends/cpu/amx_repack.h"
#include "backends/cpu/amx_repack_k.h"
#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/quant_dot_kernels.h"
#include "core/error.h"
#include "core/quant.h"

// GCC 12 reports _mm512_cvtepi32_ps's deliberately undefined pass-through operand as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tessera::cpu::TESSERA_CPU_LEVEL {

#if TESSERA_X86_AMX  // (the amx level has AVX-512 VNNI too)

namespace {

namespace L = amx_layout;
constexpr int kN = L::kPanelRows;

// Byte g of VNNI rows: the low nibbles of the chunk's nibble bytes are VNNI rows 0..3, the high ones 4..7.
__m512i nibble_row(const uint8_t* nib, int g) {
    const __m512i v = _mm512_loadu_si512(nib + 64 * (g % 4));
    return _mm512_and_si512(g < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
}

__m512i broadcast4(const int8_t* a) {
    int32_t v;
    std::memcpy(&v, a, 4);
    return _mm512_set1_epi32(v);
}

}  // namespace

namespace {

// One record (super-block b of a panel, at r) against M activation rows: acc[m] += its 16 rows' dots with
// row m. The record `ahead` bytes further along the stream is asked for, a slice per sub-block.
template <int M, DType kType>
[[gnu::always_inline]] inline void record_dots(const uint8_t* r, size_t rec, const L::KRecordParts& part,
                                               const block_q8_K* const* ab, int64_t b, size_t ahead, __m512* acc) {
    // (Inlined by force, as qdot::prefetch_part is: otherwise GCC deletes its calls; quant_dot_kernels.h.)
    const auto ask_ahead = [&](const uint8_t* record, int s) __attribute__((always_inline)) {
        qdot::prefetch_part(record, rec, s, 8, ahead, qdot::PrefetchInto::L2);
    };
    __m512i isum[M], imin[M];
    for (int m = 0; m < M; ++m) isum[m] = imin[m] = _mm512_setzero_si512();
    constexpr bool kQ5 = kType == DType::Q5_K;
    if constexpr (kType == DType::Q6_K) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {  // chunk c: sub-blocks 2c (VNNI rows 0..3) and 2c + 1 (rows 4..7)
            ask_ahead(r, c);
            const uint8_t* nib = r + part.nibbles + size_t(c) * 256;
            const uint8_t* hi = r + part.high + size_t(c) * 128;
            for (int h = 0; h < 2; ++h) {
                __m512i w[4];
                for (int g = 4 * h; g < 4 * h + 4; ++g) {
                    // Bits 4, 5 of VNNI byte 64g + i are bits 2 (g / 2), 2 (g / 2) + 1 of byte (64g + i) % 128 of
                    // the plane: shifted there (within each byte), then masked and joined in one ternary op.
                    const __m512i plane = _mm512_loadu_si512(hi + 64 * (g % 2));
                    const int from = 2 * (g / 2);
                    const __m512i up = from < 4 ? _mm512_slli_epi16(plane, unsigned(4 - from))
                                       : from == 4 ? plane
                                                   : _mm512_srli_epi16(plane, 2);
                    w[g - 4 * h] = _mm512_ternarylogic_epi32(nibble_row(nib, g), up, _mm512_set1_epi8(0x30), 0xF8);  // a | (b & c)
                }
                const int s = 2 * c + h;
                const __m512i scale = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + part.scales + size_t(s * kN))));
                for (int m = 0; m < M; ++m) {
                    const int8_t* a = ab[m][b].qs + 32 * c + 16 * h;
                    __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], broadcast4(a));
                    __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[1], broadcast4(a + 4));
                    d0 = _mm512_dpbusd_epi32(d0, w[2], broadcast4(a + 8));
                    d1 = _mm512_dpbusd_epi32(d1, w[3], broadcast4(a + 12));
                    const __m512i dot = _mm512_sub_epi32(_mm512_add_epi32(d0, d1), _mm512_set1_epi32(32 * ab[m][b].bsums[s]));
                    isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(dot, scale));
                }
            }
        }
    } else {
        // The 16 rows' packed scale bytes as three words per row, one row per lane, each sub-block's 6-bit
        // scale and min decoded once for the record (amx_k_simd.h), then sub-block by sub-block; unrolled
        // through the template so that each sub-block's byte picks and prefetch slices are constants.
        const amx_k::SixBitScales six = amx_k::six_bit_scales(amx_k::scale_words(r + part.scales));
        const auto sub_block = [&]<int s>() __attribute__((always_inline)) {
            ask_ahead(r, s);
            const __m512i mn_pair = amx_k::byte_pair(six.mn_word(s), s % 4);  // m_s in both int16 halves
            const uint8_t* nib = r + part.nibbles + size_t(s) * 256;
            // VNNI rows 0..3 are the low nibbles. Rows 4..7, the high ones, Q4_K takes in place (byte & 0xF0:
            // 16 times the value, still a u8), which saves a shift per row; their dot comes out exactly 16
            // times larger. Q5_K puts its fifth bit above each nibble instead.
            __m512i w[8];
            for (int g = 0; g < 4; ++g) {
                const __m512i v = _mm512_loadu_si512(nib + 64 * g);
                w[g] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
                w[g + 4] = kQ5 ? _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F))
                               : _mm512_and_si512(v, _mm512_set1_epi8(char(0xF0)));
            }
            if constexpr (kQ5) {
                const __m512i plane = _mm512_loadu_si512(r + part.high + size_t(s) * 64);
                for (int g = 0; g < 8; ++g) {  // fifth bit of VNNI byte 64g + i: bit g of plane byte i
                    const __m512i fifth = _mm512_and_si512(_mm512_srli_epi16(plane, g), _mm512_set1_epi8(1));
                    w[g] = _mm512_or_si512(w[g], _mm512_slli_epi16(fifth, 4));
                }
            }
            const __m512i sc = kQ5 ? amx_k::byte_lane(six.sc_word(s), s % 4) : amx_k::byte_pair(six.sc_word(s), s % 4);
            for (int m = 0; m < M; ++m) {
                const int8_t* a = ab[m][b].qs + 32 * s;
                __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
                for (int g = 0; g < 4; ++g) {
                    d0 = _mm512_dpbusd_epi32(d0, w[g], broadcast4(a + 4 * g));
                    d1 = _mm512_dpbusd_epi32(d1, w[g + 4], broadcast4(a + 4 * g + 16));
                }
                if constexpr (kQ5) {
                    isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), sc));
                } else {
                    // d0 (values 0..15) and d1 / 16 (values 16..31) each fit an int16: 16 products of at most
                    // 15 x 127 (Q8_K's values lie in [-127, 127]). d1 << 12 is d1 / 16 in the high half, exactly
                    // (its low four bits are zero), so one VPDPWSSD with the scale in both halves adds
                    // sc (d0 + d1 / 16): the very integer of a multiply, in one port-0 op where VPMULLD takes two.
                    const __m512i halves16 = _mm512_mask_blend_epi16(0xAAAAAAAA, d0, _mm512_slli_epi32(d1, 12));
                    isum[m] = _mm512_dpwssd_epi32(isum[m], halves16, sc);
                }
                int32_t pair;  // bsums[2s] | bsums[2s + 1] << 16: m_s times the sub-block's activation sum
                std::memcpy(&pair, ab[m][b].bsums + 2 * s, 4);
                imin[m] = _mm512_dpwssd_epi32(imin[m], mn_pair, _mm512_set1_epi32(pair));
            }
        };
        [&]<int... s>(std::integer_sequence<int, s...>) __attribute__((always_inline)) {
            (sub_block.template operator()<s>(), ...);
        }(std::make_integer_sequence<int, 8>{});
    }
    const __m512 d = amx_k::halves(r + part.d);
    const __m512 dmin = kType != DType::Q6_K ? amx_k::halves(r + part.dmin) : _mm512_setzero_ps();
    for (int m = 0; m < M; ++m) {
        const __m512 da = _mm512_set1_ps(ab[m][b].d);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(da, d), acc[m]);
        if constexpr (kType != DType::Q6_K)
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), imin[m])),
                                     _mm512_mul_ps(da, dmin), acc[m]);
    }
}

// M activation rows (Q8_K, row m at act + m * astride) against P panels (panel p at panel0 + p * panel_bytes)
// read side by side: out + 16 (m P + p) gets panel p's 16 dots with row m. Each sub-block's weights (and
// scales) are unpacked once into registers and taken by all M rows, so a few sequences decoded together
// cost little more than one. For one row four panels, from four runs far apart (amx_decode_panels): four
// long streams kept more lines in flight than one (tg32 Q4_K_M, TinyLlama-1.1B shape, 2 threads: 37.7-39.0
// tok/s with one, 40.2-42.1 with four; four adjacent panels, every stream restarting cold each step, had
// been slower than one).
template <int M, int P>
void gemv_panels(DType t, const uint8_t* panel0, size_t panel_bytes, int64_t nsb, const char* act, size_t astride,
                 float* out) {
    const size_t rec = L::k_record_bytes(t);
    const L::KRecordParts part = L::k_record_parts(t);
    // Decode reads each weight once, and one core's hardware prefetch alone kept too few lines in flight. A
    // record ahead (2-3 KiB) is asked for into L2, a slice of it per sub-block: a whole record's prefetches
    // issued at once stalled the core until the miss queue drained (tg32 Q4_K_M, TinyLlama-1.1B shape, 2
    // threads, one stream: one record ahead at once 32.6 tok/s; spread 36.1-36.4, two ahead 37.3-38.0, four
    // ahead 36.4-37.1; spread into L1 33.0-33.7). About 5-9 KiB ahead in all was best: two records for one
    // stream, one each for four (bench matmul -n 8192, q4_K / q6_K at 2 threads: 26.1 / 27.5 GB/s at one,
    // 24.3 / 23.2 at two, 19.9 / 19.0 with none).
    const size_t ahead = (P >= 4 ? 1 : 2) * rec;
    const block_q8_K* ab[M];
    for (int m = 0; m < M; ++m) ab[m] = reinterpret_cast<const block_q8_K*>(act + size_t(m) * astride);
    __m512 acc[P][M];
    for (auto& panel : acc)
        for (auto& v : panel) v = _mm512_setzero_ps();
    const auto records = [&]<DType kType>() {
        for (int64_t b = 0; b < nsb; ++b)
            for (int p = 0; p < P; ++p)
                record_dots<M, kType>(panel0 + size_t(p) * panel_bytes + size_t(b) * rec, rec, part, ab, b, ahead, acc[p]);
    };
    switch (t) {
    case DType::Q4_K: records.template operator()<DType::Q4_K>(); break;
    case DType::Q5_K: records.template operator()<DType::Q5_K>(); break;
    case DType::Q6_K: records.template operator()<DType::Q6_K>(); break;
    default: throw Error("amx_gemv_k: not a K-quant type", Status::Unsupported);
    }
    for (int p = 0; p < P; ++p)
        for (int m = 0; m < M; ++m) _mm512_storeu_ps(out + 16 * (m * P + p), acc[p][m]);
}

}  // namespace

// Panels read side by side for one activation row (gemv_panels says why); several rows read one at a time.
constexpr int kOneRowPanels = 4;

int amx_gemv_k_side_by_side(int m) { return m == 1 ? kOneRowPanels : 1; }

void amx_gemv_k(DType t, const uint8_t* panel0, size_t panel_bytes, int64_t nsb, const char* act, size_t astride,
                int m, int panels, float* out) {
    using Fn = void (*)(DType, const uint8_t*, size_t, int64_t, const char*, size_t, float*);
    static_assert(kAmxDecodeMaxRows == 8, "amx_gemv_k: the table below covers 1 .. 8 rows");
    // All rows in one pass: passes of 4 rows cost 15 % at 6 and 8 streams (tg32 x8 Q4_K_M 148 vs 173 tok/s).
    static constexpr Fn kRowsFns[kAmxDecodeMaxRows] = {gemv_panels<1, 1>, gemv_panels<2, 1>, gemv_panels<3, 1>,
                                                       gemv_panels<4, 1>, gemv_panels<5, 1>, gemv_panels<6, 1>,
                                                       gemv_panels<7, 1>, gemv_panels<8, 1>};
    TESSERA_CHECK(m >= 1 && m <= kAmxDecodeMaxRows, "amx_gemv_k: %d activation rows (1..%d)", m, int(kAmxDecodeMaxRows));
    TESSERA_CHECK(panels == 1 || panels == amx_gemv_k_side_by_side(m), "amx_gemv_k: %d panels side by side for %d rows",
                  panels, m);
    if (panels == kOneRowPanels)
        gemv_panels<1, kOneRowPanels>(t, panel0, panel_bytes, nsb, act, astride, out);
    else
        kRowsFns[m - 1](t, panel0, panel_bytes, nsb, act, astride, out);
}

#else

int amx_gemv_k_side_by_side(int) { return 1; }

void amx_gemv_k(DType, const uint8_t*, size_t, int64_t, const char*, size_t, int, int, float*) {
    throw Error("cpu backend: K-quant weights repacked for AMX tiles reached a kernel level without them", Status::Unsupported);
}

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
