// AVX-512 pieces shared by the amx level's K-quant kernels (amx_matmul_k.cpp: tiles, amx_gemv_k.cpp: decode):
// reading a K record's per-row fp16 scales and packed 6-bit scales/mins with one lane per weight row. Both
// kernels take them from here so that the two paths decode the very same integers and floats. The fp16
// conversion (halves) also serves the Q4_0/Q8_0 kernels (amx_matmul.cpp).
#pragma once
#include <cstdint>

#include "backends/cpu/amx_tiles.h"

#if TESSERA_X86_AMX

namespace tessera::cpu::TESSERA_CPU_LEVEL::amx_k {

// 16 fp16 values (one per weight row) as 16 floats, exactly (F16C's conversion, in two halves of 8).
inline __m512 halves(const uint8_t* p) {
    const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

// The 16 rows' 12 packed scale/min bytes (a record's scales part, rows 12 bytes apart) as three words per
// row - bytes 0-3, 4-7, 8-11 - one row per lane: word i of row n is dword 3n + i of the 192 bytes. Three
// loads and permutes rather than 48 scalar loads, or a gather (slow on parts with the GDS mitigation).
struct ScaleWords {
    __m512i w0, w1, w2;
};
inline __m512i dwords_3n_plus(const __m512i z0, const __m512i z1, const __m512i z2, int i) {
    // Lanes n with 3n + i < 32 come from z0:z1 (index bit 4 picks the source), the rest from z2.
    const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                            _mm512_set1_epi32(3)),
                                         _mm512_set1_epi32(i));
    const __m512i lo = _mm512_permutex2var_epi32(z0, idx, z1);
    const __mmask16 high = __mmask16(_mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(32)));
    return _mm512_mask_permutexvar_epi32(lo, high, _mm512_and_si512(idx, _mm512_set1_epi32(15)), z2);
}
inline ScaleWords scale_words(const uint8_t* p) {
    const __m512i z0 = _mm512_loadu_si512(p), z1 = _mm512_loadu_si512(p + 64), z2 = _mm512_loadu_si512(p + 128);
    return {dwords_3n_plus(z0, z1, z2, 0), dwords_3n_plus(z0, z1, z2, 1), dwords_3n_plus(z0, z1, z2, 2)};
}

// The 8 sub-blocks' 6-bit scales and mins (get_scale_min's layout: s < 4: low six bits of bytes s and s + 4;
// s >= 4: a nibble of byte s + 4 with the top two bits of byte s - 4 / s above it), decoded once per record,
// a byte each, four to a word: lo_* hold sub-blocks 0..3 (bytes 0..3 of each row's lane), hi_* 4..7. A
// kernel then takes sub-block s's value with one byte shuffle (port 5, byte_lane / byte_pair) rather than
// four to six shifts per sub-block (port 0, which the decode's VPDPBUSD needs).
struct SixBitScales {
    __m512i lo_sc, lo_mn, hi_sc, hi_mn;
    __m512i sc_word(int s) const { return s < 4 ? lo_sc : hi_sc; }
    __m512i mn_word(int s) const { return s < 4 ? lo_mn : hi_mn; }
};
inline SixBitScales six_bit_scales(const ScaleWords& w) {
    const __m512i m6 = _mm512_set1_epi8(63), m4 = _mm512_set1_epi8(15), top = _mm512_set1_epi8(0x30);
    // s >= 4, byte j = s - 4: the nibble of w2's byte j (low: scale, high: min), with the top two bits of
    // byte j of w0 (scale) or w1 (min) above it: those bits 6, 7 shifted to 4, 5 within the byte.
    const __m512i sc_top = _mm512_and_si512(_mm512_srli_epi32(w.w0, 2), top);
    const __m512i mn_top = _mm512_and_si512(_mm512_srli_epi32(w.w1, 2), top);
    return {_mm512_and_si512(w.w0, m6), _mm512_and_si512(w.w1, m6),
            _mm512_ternarylogic_epi32(w.w2, m4, sc_top, 0xEA),  // (a & b) | c
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w.w2, 4), m4), mn_top)};
}
// Byte k (0..3) of each lane's word, zero-extended to the lane. Within each 128-bit lane, dword d's bytes are
// 4d .. 4d + 3; a shuffle index of -1 (top bit set) writes zero. (Inlined by force: where k is a constant, as
// in the decode's unrolled sub-blocks, the pick folds into a constant.)
[[gnu::always_inline]] inline __m512i byte_lane(__m512i words, int k) {
    const char b = char(k);
    const __m128i pick = _mm_setr_epi8(b, -1, -1, -1, char(4 + b), -1, -1, -1, char(8 + b), -1, -1, -1, char(12 + b), -1, -1, -1);
    return _mm512_shuffle_epi8(words, _mm512_broadcast_i32x4(pick));
}
// Byte k (0..3) of each lane's word in both int16 halves of the lane (v | v << 16): what VPDPWSSD takes.
[[gnu::always_inline]] inline __m512i byte_pair(__m512i words, int k) {
    const char b = char(k);
    const __m128i pick = _mm_setr_epi8(b, -1, b, -1, char(4 + b), -1, char(4 + b), -1, char(8 + b), -1, char(8 + b), -1,
                                       char(12 + b), -1, char(12 + b), -1);
    return _mm512_shuffle_epi8(words, _mm512_broadcast_i32x4(pick));
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::amx_k

#endif
