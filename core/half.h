// f16 and bf16 <-> f32, exact: round to nearest even, Inf kept, NaN stays a quiet NaN. Integer arithmetic
// only, so every backend that converts (core's row conversions, the reference, the CUDA kernels) gets the
// same bits; usable on the host and on the device.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace tessera {

namespace half_detail {

TESSERA_HOST_DEVICE uint32_t bits_of(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t x;
    std::memcpy(&x, &f, 4);
    return x;
#endif
}

TESSERA_HOST_DEVICE float float_of(uint32_t x) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(x);
#else
    float f;
    std::memcpy(&f, &x, 4);
    return f;
#endif
}

}  // namespace half_detail

// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
TESSERA_HOST_DEVICE uint16_t fp32_to_fp16(float f) {
    const uint32_t x = half_detail::bits_of(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // Inf or NaN: keep NaN quiet and non-zero
        return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x0200u | ((abs >> 13) & 0x3ffu) : 0u));
    }
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: overflow to Inf
    if (abs < 0x38800000u) {                                 // result is subnormal or zero
        if (abs < 0x33000000u) return uint16_t(sign);         // below half the smallest subnormal
        const uint32_t exp = abs >> 23;
        const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - exp;  // 14..24: bits dropped to reach 2^-24 units
        uint32_t q = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return uint16_t(sign | q);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
    const uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into exponent is correct
    return uint16_t(sign | h);
}

TESSERA_HOST_DEVICE float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0x1f) {
        x = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        x = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        x = sign;
    } else {  // subnormal: normalize
        uint32_t e = 113;
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --e;
        }
        x = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    return half_detail::float_of(x);
}

TESSERA_HOST_DEVICE uint16_t fp32_to_bf16(float f) {
    uint32_t x = half_detail::bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return uint16_t(x >> 16);
}

TESSERA_HOST_DEVICE float bf16_to_fp32(uint16_t h) { return half_detail::float_of(uint32_t(h) << 16); }

}  // namespace tessera
