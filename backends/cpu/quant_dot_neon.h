// Private to backends/cpu/quant_dot_neon*.cpp: the aarch64 int8 building blocks the NEON tile kernels share.
// Compiled at the ARM kernel levels that define TESSERA_CPU_NEON (neon, dotprod, i8mm; quant_dot_kernels.h
// sets TESSERA_QDOT_NEON). One source serves all three: the compiler's feature macros pick the instructions.
//   neon     SMULL + SADALP: 8 int8 products per instruction pair, pairwise into int32
//   dotprod  SDOT: 16 int8 products into 4 int32 lanes in one instruction
//   i8mm     SMMLA: a 2x8 by 8x2 int8 matrix product into a 2x2 int32 tile (two weight rows by two columns)
// Unlike x86's u8 x s8 instructions, all three multiply signed by signed bytes without saturating, so weights
// are unpacked to their signed levels directly (no offset-and-correct step).
#pragma once
#include "backends/cpu/quant_dot_kernels.h"

#if TESSERA_QDOT_NEON
#include <arm_neon.h>

#include <cstring>

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot::neon {

// acc + the products of 16 int8 pairs. The per-lane grouping differs between the two paths (4 adjacent
// products per lane with SDOT, pairs then pairs of pairs without), so only the sum over all lanes, or a
// whole-vector scale, is meaningful; callers use nothing else.
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    // |a * b| <= 128 * 128 = 16384: each int16 product is exact; SADALP adds pairs into int32.
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

// A 32-value group as two int8 vectors: values 0-15 and 16-31.
struct Group32 {
    int8x16_t lo, hi;
};

// 16 bytes of nibbles -> values j (low nibble of byte j) and j + 16 (its high nibble), unsigned.
inline Group32 nibbles(const uint8_t* qs) {
    const uint8x16_t v = vld1q_u8(qs);
    return {vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4))};
}

// The same nibbles looked up in a 16-entry int8 grid (IQ4_NL, IQ4_XS, MXFP4): one TBL per half.
inline Group32 grid_levels(const uint8_t* qs, const int8x16_t grid) {
    const uint8x16_t v = vld1q_u8(qs);
    return {vqtbl1q_s8(grid, vandq_u8(v, vdupq_n_u8(0x0F))), vqtbl1q_s8(grid, vshrq_n_u8(v, 4))};
}

// 0x10 in byte i where bit i of the 32 little-endian bits at qh is set (the fifth bit of Q5_0/Q5_1).
inline Group32 fifth_bits(const uint8_t* qh) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    const uint8x16_t sel = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));  // bytes 1, 2, 4, .., 128 twice
    const uint8x16_t b01 = vcombine_u8(vdup_n_u8(uint8_t(bits)), vdup_n_u8(uint8_t(bits >> 8)));
    const uint8x16_t b23 = vcombine_u8(vdup_n_u8(uint8_t(bits >> 16)), vdup_n_u8(uint8_t(bits >> 24)));
    const uint8x16_t ten = vdupq_n_u8(0x10);
    return {vreinterpretq_s8_u8(vandq_u8(vtstq_u8(b01, sel), ten)), vreinterpretq_s8_u8(vandq_u8(vtstq_u8(b23, sel), ten))};
}

inline int8x16_t add(int8x16_t a, int8x16_t b) { return vaddq_s8(a, b); }
inline int8x16_t sub(int8x16_t a, int v) { return vsubq_s8(a, vdupq_n_s8(int8_t(v))); }

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot::neon

#endif  // TESSERA_QDOT_NEON
