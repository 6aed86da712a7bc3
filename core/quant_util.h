// Private helpers shared by the quant row conversions (core/quant*.cpp only).
#pragma once
#include <cstdint>
#include <cstring>

#include "core/types.h"

namespace tessera::quant_detail {

// Round to nearest, ties to even, for |x| < 2^22: adding 1.5 * 2^23 puts the integer part in the low
// mantissa bits (the FPU rounds it, ties to even). This is the rounding llama.cpp's K-quant search uses;
// a different tie rule would change the bytes.
inline int nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }
inline uint16_t f2h(float f) { return fp32_to_fp16(f); }

template <class T> inline T clampv(T v, T lo, T hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Groups whose largest |x| is below this quantize to all zeros (scale 0).
constexpr float kGroupMaxEps = 1e-15f;

}  // namespace tessera::quant_detail
