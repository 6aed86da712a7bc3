// Decode (one activation row) on K-quant weights in the amx layout (amx_repack_k.h), with AVX-512 VNNI
// instead of tiles: a 1-row tile product would use 1/16 of each, and widening a whole panel for one row would
// cost more than the dot itself. The packed bytes are read in place. A chunk's VNNI row g (64 bytes: for each
// of the 16 weight rows its values 4g .. 4g + 3) is what VPDPBUSD takes with a broadcast of the activation's
// values 4g .. 4g + 3, giving the 16 rows' partial dots in the 16 int32 lanes. VPDPBUSD multiplies unsigned
// weights by signed activations, which is how the values are stored (Q6_K's offset of 32 comes off after, as
// 32 times the sub-block's activation sum, bsums). Per lane this is the integer the tile product gives, scaled
// by the same integer scales and the same float operations in the same order (amx_matmul_k.cpp), so a token's
// logits do not depend on whether it was decoded alone or in a batch.
#include "backends/cpu/amx_matmul_k.h"

#include <cstring>

#include "backends/cpu/amx_k_simd.h"
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

__m512i lanes(const int32_t* v) { return _mm512_loadu_si512(v); }

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

void amx_gemv_k(DType t, const uint8_t* panel, int64_t nsb, const char* act, float* out16) {
    const size_t rec = L::k_record_bytes(t);
    const L::KRecordParts part = L::k_record_parts(t);
    const auto* ab = reinterpret_cast<const block_q8_K*>(act);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nsb; ++b) {
        const uint8_t* r = panel + size_t(b) * rec;
        // Decode reads each weight once; one core's hardware prefetch alone kept too few lines in flight. The
        // next super-block's record (2-3 KiB) is asked for into L2 while this one is computed (tg16 Q4_K_M,
        // 2 threads: 27.7 tok/s without; one record ahead 35.4 into L1, 37.9 into L2; two 33.4 into L1; four
        // 35.7 into L2).
        qdot::prefetch_ahead(r, rec, rec, qdot::PrefetchInto::L2);
        const int8_t* a = ab[b].qs;
        const int16_t* bsums = ab[b].bsums;
        __m512i isum = _mm512_setzero_si512(), imin = _mm512_setzero_si512();
        if (t == DType::Q6_K) {
            for (int c = 0; c < 8; ++c) {  // chunk c: sub-blocks 2c (VNNI rows 0..3) and 2c + 1 (rows 4..7)
                const uint8_t* nib = r + part.nibbles + size_t(c) * 256;
                const uint8_t* hi = r + part.high + size_t(c) * 128;
                for (int h = 0; h < 2; ++h) {
                    __m512i dot = _mm512_setzero_si512();
                    for (int g = 4 * h; g < 4 * h + 4; ++g) {  // bits 4, 5 of VNNI byte 64g + i: byte (64g + i) % 128, bits 2 (g / 2)
                        const __m512i up = _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512(hi + 64 * (g % 2)), 2 * (g / 2)),
                                                            _mm512_set1_epi8(3));
                        const __m512i w = _mm512_or_si512(nibble_row(nib, g), _mm512_slli_epi16(up, 4));
                        dot = _mm512_dpbusd_epi32(dot, w, broadcast4(a + 32 * c + 4 * g));
                    }
                    const int s = 2 * c + h;
                    dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(32 * bsums[s]));
                    int32_t sc[kN];
                    for (int n = 0; n < kN; ++n) sc[n] = int8_t(r[part.scales + size_t(s * kN + n)]);
                    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, lanes(sc)));
                }
            }
        } else {
            // The 16 rows' packed scale bytes as three words per row, one row per lane, then sub-block s's 6-bit
            // scale and min decoded in all lanes at once (the tile path's decoding, amx_k_simd.h).
            const amx_k::ScaleWords words = amx_k::scale_words(r + part.scales);
            for (int s = 0; s < 8; ++s) {
                __m512i sc, mn;
                amx_k::scale_min(words, s, &sc, &mn);
                const uint8_t* nib = r + part.nibbles + size_t(s) * 256;
                __m512i dot = _mm512_setzero_si512();
                for (int g = 0; g < 8; ++g) {
                    __m512i wv = nibble_row(nib, g);
                    if (t == DType::Q5_K) {  // fifth bit of VNNI byte 64g + i: bit g of plane byte i
                        const __m512i fifth = _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512(r + part.high + size_t(s) * 64), g),
                                                               _mm512_set1_epi8(1));
                        wv = _mm512_or_si512(wv, _mm512_slli_epi16(fifth, 4));
                    }
                    dot = _mm512_dpbusd_epi32(dot, wv, broadcast4(a + 32 * s + 4 * g));
                }
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, sc));
                imin = _mm512_add_epi32(imin, _mm512_mullo_epi32(mn, _mm512_set1_epi32(bsums[2 * s] + bsums[2 * s + 1])));
            }
        }
        const __m512 da = _mm512_set1_ps(ab[b].d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(da, amx_k::halves(r + part.d)), acc);
        if (t != DType::Q6_K)
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), imin)),
                                  _mm512_mul_ps(da, amx_k::halves(r + part.dmin)), acc);
    }
    _mm512_storeu_ps(out16, acc);
}

#else

void amx_gemv_k(DType, const uint8_t*, int64_t, const char*, float*) {
    throw Error("cpu backend: K-quant weights repacked for AMX tiles reached a kernel level without them", Status::Unsupported);
}

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
