// CPU emulation of the cuda_fp16.h surface the cuda backend uses (see cuda_runtime.h here). Conversions are
// IEEE binary16 with round-to-nearest-even, done by the compiler's _Float16 (not by core's converter, so
// the emulation checks the kernels against an independent implementation).
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"

struct alignas(2) __half {
    unsigned short __x;
};
struct alignas(4) __half2 {
    __half x, y;
};

inline __half __ushort_as_half(unsigned short bits) { return __half{bits}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline float __half2float(__half h) {
    _Float16 f;
    std::memcpy(&f, &h.__x, 2);
    return float(f);
}
inline __half __float2half_rn(float f) {
    const _Float16 h = _Float16(f);  // IEEE round to nearest even, overflow to infinity
    __half r;
    std::memcpy(&r.__x, &h, 2);
    return r;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
