// Private to backends/cpu/quant_dot_legacy*.cpp: how each 32-element weight block (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL, MXFP4) unpacks into the unsigned bytes u = q + offset its tile kernels dot with Q8_0
// activations (see quant_dot_legacy.cpp), shared by the 256-bit and 512-bit kernels.
#pragma once
#include "backends/cpu/quant_dot_kernels.h"

#include <cstring>

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX2

// Internal linkage, as when these lived in one .cpp: the level objects are built with -fno-weak, under which
// GCC cannot give a class's static constexpr members (inline variables) one shared definition.
namespace {

// Bit i of the little-endian 32-bit qh -> 0x10 in byte i.
inline __m256i fifth_bits(const uint8_t* qh4) {
    uint32_t bits;
    std::memcpy(&bits, qh4, 4);
#if TESSERA_X86_AVX512
    return _mm256_maskz_mov_epi8(__mmask32(bits), _mm256_set1_epi8(0x10));
#else
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(int(bits)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                       2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
#endif
}

// kOffsetShift: log2 of the offset added to q (-1: none, the type is unsigned with a min term; -2: signed
// levels, dotted through the sign trick).
struct Q4_0W {
    using Block = block_q4_0;
    static constexpr int kOffsetShift = 3;  // offset 8
    static constexpr bool kHasMin = false;
    static __m256i unpack(const Block& b) { return unpack_nibbles(b.qs); }
    static float min(const Block&) { return 0; }
    static float scale(const Block& b) { return h2f(b.d); }
};
struct Q4_1W {
    using Block = block_q4_1;
    static constexpr int kOffsetShift = -1;
    static constexpr bool kHasMin = true;
    static __m256i unpack(const Block& b) { return unpack_nibbles(b.qs); }
    static float min(const Block& b) { return h2f(b.m); }
    static float scale(const Block& b) { return h2f(b.d); }
};
struct Q5_0W {
    using Block = block_q5_0;
    static constexpr int kOffsetShift = 4;  // offset 16
    static constexpr bool kHasMin = false;
    static __m256i unpack(const Block& b) { return _mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)); }
    static float min(const Block&) { return 0; }
    static float scale(const Block& b) { return h2f(b.d); }
};
struct Q5_1W {
    using Block = block_q5_1;
    static constexpr int kOffsetShift = -1;
    static constexpr bool kHasMin = true;
    static __m256i unpack(const Block& b) { return _mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)); }
    static float min(const Block& b) { return h2f(b.m); }
    static float scale(const Block& b) { return h2f(b.d); }
};
// Q8_0 weights: u = q + 128 (flip the sign bit). Needs the VNNI dot (u up to 255); without it, q itself
// goes through the sign trick (|q| x sign(x, q)), see tile().
struct Q8_0W {
    using Block = block_q8_0;
#if TESSERA_QDOT_VNNI
    static constexpr int kOffsetShift = 7;
#else
    static constexpr int kOffsetShift = -2;  // marks the sign-trick path
#endif
    static constexpr bool kHasMin = false;
    static __m256i unpack(const Block& b) {
        const __m256i q = loadu256(b.qs);
        return kOffsetShift == 7 ? _mm256_xor_si256(q, _mm256_set1_epi8(int8_t(0x80))) : q;
    }
    static float min(const Block&) { return 0; }
    static float scale(const Block& b) { return h2f(b.d); }
};

// IQ4_NL: levels -127..113. With VNNI, u = level + 128 as for Q8_0; without it the int16 pair sums would
// saturate, so the signed levels go through Q8_0's sign trick.
struct IQ4_NLW {
    using Block = block_iq4_nl;
#if TESSERA_QDOT_VNNI
    static constexpr int kOffsetShift = 7;
#else
    static constexpr int kOffsetShift = -2;
#endif
    static constexpr bool kHasMin = false;
    static constexpr ByteTable kTable = offset_grid(kIQ4Grid, kOffsetShift == 7 ? 128 : 0);
    static __m256i unpack(const Block& b) { return grid_levels(b.qs, kTable); }
    static float min(const Block&) { return 0; }
    static float scale(const Block& b) { return h2f(b.d); }
};
// MXFP4: levels -12..12 (E2M1 doubled); u = level + 16 stays small enough for the pair sums everywhere.
// Scale: the E8M0 byte halved, 2^(e - 128).
struct MXFP4W {
    using Block = block_mxfp4;
    static constexpr int kOffsetShift = 4;  // offset 16
    static constexpr bool kHasMin = false;
    static constexpr ByteTable kTable = offset_grid(kMXFP4Grid, 16);
    static __m256i unpack(const Block& b) { return grid_levels(b.qs, kTable); }
    static float min(const Block&) { return 0; }
    static float scale(const Block& b) { return mxfp4_half_scale(b.e); }
};

}  // namespace

#endif  // TESSERA_QDOT_AVX2

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
