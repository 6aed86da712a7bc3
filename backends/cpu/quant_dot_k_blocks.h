// Private to backends/cpu/quant_dot_k*.cpp: how each K-quant super-block (Q2_K .. Q6_K, IQ4_XS) unpacks
// into the bytes and scales its tile kernels dot with Q8_K activations (see quant_dot_k.cpp), shared by the
// 256-bit and 512-bit kernels.
#pragma once
#include "backends/cpu/quant_dot_kernels.h"

#include <cstring>

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX2

// Internal linkage, as when these lived in one .cpp: the level objects are built with -fno-weak, under which
// GCC cannot give a class's static constexpr members (inline variables) one shared definition.
namespace {

// Per weight row and super-block, in registers: the scale of each 16-value sub-block as 16 int16 lanes
// (the 32-value sub-blocks of Q4_K/Q5_K fill two lanes each), and the per-16-value multipliers of the
// activation sums: the mins (times dmin) or the scales again (times the level offset).
struct Prepared {
    __m256i sc16, mul16;
    float d, dmin;  // dmin: weight of the min term (0 when the type has none)
};

#if !TESSERA_X86_AVX512
// Byte shuffles for group_scales: in a register holding int16 scales 8h..8h+7 in both lanes, group g = 4h + j
// takes scale 2g (local 2j) in the low lane and 2g + 1 (local 2j + 1) in the high one.
struct GroupScaleShuffle {
    alignas(32) int8_t v[4][32];
};
constexpr GroupScaleShuffle make_group_scale_shuffle() {
    GroupScaleShuffle t{};
    for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 32; ++i) {
            const int element = i < 16 ? 2 * j : 2 * j + 1;
            t.v[j][i] = int8_t(2 * element + (i % 2));
        }
    return t;
}
constexpr GroupScaleShuffle kGroupScaleShuffle = make_group_scale_shuffle();
#endif

// The group-g scale vector: lanes 0-7 take sub-block 2g's scale (values 0-15 of the group, as int16 pairs),
// lanes 8-15 sub-block 2g + 1's.
inline __m256i group_scales(__m256i sc16, int g) {
#if TESSERA_X86_AVX512
    const __m256i idx = _mm256_set_m128i(_mm_set1_epi16(short(2 * g + 1)), _mm_set1_epi16(short(2 * g)));
    return _mm256_permutexvar_epi16(idx, sc16);
#else
    // The 128-bit half holding both scales, in both lanes (for a fixed sc16 the compiler makes the two
    // halves once per super-block), then one in-lane byte shuffle: a store, two scalar reloads and two
    // broadcasts per group and row before.
    const __m256i half = g < 4 ? _mm256_permute2x128_si256(sc16, sc16, 0x00) : _mm256_permute2x128_si256(sc16, sc16, 0x11);
    return _mm256_shuffle_epi8(half, _mm256_load_si256(reinterpret_cast<const __m256i*>(kGroupScaleShuffle.v[g % 4])));
#endif
}

inline __m256i widen_s8(const int8_t* b16) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b16)));
}

inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Q4_K / Q5_K 12-byte packing -> sc16 / mul16 (each 32-value sub-block's scale / min in both of its lanes).
// Bytes 0-3: scales 0-3 (low 6 bits), bytes 4-7: mins 0-3; bytes 8-11: low nibble scale 4-7, high nibble
// min 4-7, whose top 2 bits are bits 6-7 of bytes 0-3 (scales) and 4-7 (mins). Four bytes at a time.
inline void k4_scales_mins(const uint8_t* q, Prepared& p) {
    const uint32_t a = load32(q), b = load32(q + 4), c = load32(q + 8);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    const __m128i v = _mm_set_epi32(int(m_hi), int(m_lo), int(sc_hi), int(sc_lo));  // sc 0-7 | min 0-7
    p.sc16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
    p.mul16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
}

// Q3_K 12-byte packing -> 16 signed scales: low nibbles of bytes 0-7 are scales 0-7, high nibbles scales
// 8-15; byte 8 + j % 4 holds the top 2 bits of scale j at bits 2 * (j / 4). Stored with +32.
inline __m256i q3_scales(const uint8_t* q) {
    const uint32_t a0 = load32(q), a1 = load32(q + 4), t = load32(q + 8);
    const uint32_t s0 = (a0 & 0x0f0f0f0fu) | (((t >> 0) & 0x03030303u) << 4);
    const uint32_t s1 = (a1 & 0x0f0f0f0fu) | (((t >> 2) & 0x03030303u) << 4);
    const uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | (((t >> 4) & 0x03030303u) << 4);
    const uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | (((t >> 6) & 0x03030303u) << 4);
    const __m128i v = _mm_set_epi32(int(s3), int(s2), int(s1), int(s0));
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
}

// 2-bit field k (0..3) of each byte of v, i.e. (v >> 2k) & 3.
inline __m256i bits2(__m256i v, int k) { return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3)); }
// Bit g of each byte of v, moved to bit `to`.
inline __m256i bit_to(__m256i v, int g, int to) {
    const __m256i b = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(g)), _mm256_set1_epi8(1));
    return _mm256_sll_epi16(b, _mm_cvtsi32_si128(to));
}

// Q4_K / Q5_K's 4-bit levels of group g (values 32g .. 32g + 31): the 64-value chunk g / 2 at qs[32 * (g / 2)]
// holds values 0-31 in its low nibbles and 32-63 in its high ones.
inline __m256i k4_nibbles(const uint8_t* qs, int g) {
    const __m256i v = loadu256(qs + 32 * (g / 2));
    return _mm256_and_si256(g % 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
}

struct Q2_KW {
    using Block = block_q2_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
        p.sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0F)));
        p.mul16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0F)));
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // values 32g .. 32g + 31: half h = g / 4 uses qs[32h ..], field g % 4
    static __m256i unpack(const Block& b, int g) { return bits2(loadu256(b.qs + 32 * (g / 4)), g % 4); }
};

struct Q3_KW {
    using Block = block_q3_K;
    static constexpr int kOffsetShift = 2;  // offset 4
    static void prepare(const Block& b, Prepared& p) {
        p.sc16 = p.mul16 = q3_scales(b.scales);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // low 2 bits as Q2_K; the high bit of value 32g + l is bit g of hmask[l]
    static __m256i unpack(const Block& b, int g) {
        return _mm256_or_si256(bits2(loadu256(b.qs + 32 * (g / 4)), g % 4), bit_to(loadu256(b.hmask), g, 2));
    }
};

struct Q4_KW {
    using Block = block_q4_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        k4_scales_mins(b.scales, p);
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    static __m256i unpack(const Block& b, int g) { return k4_nibbles(b.qs, g); }
};

struct Q5_KW {
    using Block = block_q5_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        k4_scales_mins(b.scales, p);
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // Q4_K's nibbles plus the fifth bit of value 32g + l: bit g of qh[l]
    static __m256i unpack(const Block& b, int g) { return _mm256_or_si256(k4_nibbles(b.qs, g), bit_to(loadu256(b.qh), g, 4)); }
};

struct Q6_KW {
    using Block = block_q6_K;
    static constexpr int kOffsetShift = 5;  // offset 32
    static void prepare(const Block& b, Prepared& p) {
        p.sc16 = p.mul16 = widen_s8(b.scales);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // half h = g / 4 (ql + 64h, qh + 32h); field k = g % 4: low 4 bits from ql[32 * (k & 1) + l] (nibble k >> 1),
    // high 2 bits from qh[l] bits 2k..2k+1
    static __m256i unpack(const Block& b, int g) {
        const int h = g / 4, k = g % 4;
        const __m256i ql = loadu256(b.ql + 64 * h + 32 * (k & 1));
        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (k >> 1))), _mm256_set1_epi8(0x0F));
        const __m256i hi = _mm256_sll_epi16(bits2(loadu256(b.qh + 32 * h), k), _mm_cvtsi32_si128(4));
        return _mm256_or_si256(lo, hi);
    }
};

struct IQ4_XSW {
    using Block = block_iq4_xs;
    static constexpr int kOffsetShift = -2;  // signed levels, see the file comment
    static constexpr ByteTable kTable = offset_grid(kIQ4Grid, 0);
    // Group g's scale ls - 32 in both of its 16-value lanes: ls = low nibble g of scales_l | bits 2g..2g+1 of
    // scales_h << 4.
    static void prepare(const Block& b, Prepared& p) {
        alignas(32) int16_t sc[16];
        for (int g = 0; g < 8; ++g) {
            const int ls = ((b.scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b.scales_h >> (2 * g)) & 3) << 4);
            sc[2 * g] = sc[2 * g + 1] = int16_t(ls - 32);
        }
        p.sc16 = p.mul16 = _mm256_load_si256(reinterpret_cast<const __m256i*>(sc));
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // values 32g .. 32g + 31: the 16 bytes at qs + 16g, low nibbles first
    static __m256i unpack(const Block& b, int g) { return grid_levels(b.qs + 16 * g, kTable); }
};

}  // namespace

#endif  // TESSERA_QDOT_AVX2

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
