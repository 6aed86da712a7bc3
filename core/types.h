// Element types: the GGUF type ids, byte for byte, and one traits entry each.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/half.h"  // fp32_to_fp16 and friends

namespace tessera {

// Values are the GGUF / ggml type ids; a file's type field maps directly.
enum class DType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ4_NL = 20, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30, MXFP4 = 39,
};

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

struct TypeTraits {
    const char* name;       // "q4_0", as llama.cpp prints it
    int64_t block_size;     // elements per block (1 for plain types)
    size_t block_bytes;     // bytes per block
    bool quantized;
    ToFloatFn to_float;     // dequantize a row of n elements (n % block_size == 0); null if none
    FromFloatFn from_float; // reference quantize a row; null if none
};

// True when `id` is a type tessera knows (including ones it cannot compute with).
bool is_known_type_id(uint32_t id);
// Throws tessera::Error for an unknown type.
const TypeTraits& type_traits(DType t);
const char* type_name(DType t);
// Parses "f16", "q4_0", "Q4_K" ...; throws on unknown names.
DType type_from_name(const std::string& name);
// Bytes for a row of n elements; throws if n is not a multiple of the block size or overflows.
size_t row_bytes(DType t, int64_t n);

}  // namespace tessera
