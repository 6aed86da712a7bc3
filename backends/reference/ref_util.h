// Private helpers of the reference backend: naming nodes in errors, reading and
// writing elements and rows of any float or quantized type through any strides.
// Everything here is scalar and deliberately plain: it is the oracle.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace tessera::ref::detail {

// "get_rows 'tok_embd rows'" or "get_rows (unnamed)": how errors name a node.
std::string label(const Tensor* t);

// True for types whose single elements convert to float (F32, F16, BF16).
bool is_plain_float(DType t);
// True when a row of this type can be read as floats (plain floats and quant types with a dequantizer).
bool readable_as_float(DType t);
// True when floats can be written as this type (plain floats and quant types with a quantizer).
bool writable_from_float(DType t);

// One element of a plain-float tensor (F32/F16/BF16), any strides.
float load(const Tensor& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0);
void store(const Tensor& t, float v, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0);
int32_t load_i32(const Tensor& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0);
void store_i32(const Tensor& t, int32_t v, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0);

// Row (i1, i2, i3) as ne[0] floats. Quantized rows must be contiguous (nb[0] == block bytes).
void read_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3, float* out);
// Writes ne[0] floats into row (i1, i2, i3), converting (quantizing) to t's type.
void write_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3, const float* in);

// Every element in logical order (i0 fastest), as floats.
std::vector<float> read_all(const Tensor& t);
// Writes nelements() floats in logical order.
void write_all(const Tensor& t, const float* in);

// Throws naming the node when it or a source has no storage.
void require_storage(const Tensor* node);

// Op kernels, one file per family.
void cont(Tensor* dst);
void cpy(Tensor* dst);
void get_rows(Tensor* dst);
void set_rows(Tensor* dst);
void concat(Tensor* dst);
void mul_mat(Tensor* dst);
void mul_mat_id(Tensor* dst);
void binary(Tensor* dst);   // Add, Mul, Div
void unary(Tensor* dst);    // Scale, Silu, Gelu, GeluErf, Sigmoid, Softcap
void glu(Tensor* dst);      // SwiGlu, GeGlu
void rms_norm(Tensor* dst);
void norm(Tensor* dst);
void rope(Tensor* dst);
void softmax(Tensor* dst);
void sum_mean(Tensor* dst);  // Sum, Mean
void argmax(Tensor* dst);
void top_k(Tensor* dst);

}  // namespace tessera::ref::detail
