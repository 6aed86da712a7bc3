// PLACEHOLDER until the SIMD kernels land: activations stay f32 and each weight
// row is dequantized, then dotted in double. Correct, slow.
#include "backends/cpu/quant_dot.h"

#include <cstring>
#include <vector>

namespace tessera::cpu {

DType activation_type(DType) { return DType::F32; }
size_t activation_row_bytes(DType, int64_t k) { return size_t(k) * 4; }
void quantize_activations(DType, const float* x, void* dst, int64_t k) { std::memcpy(dst, x, size_t(k) * 4); }

void dot_tile(DType w, int64_t k, const void* weights, size_t w_stride, int64_t nr, const void* acts,
              size_t act_stride, int64_t nc, float* out, int64_t out_row_stride) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < nr; ++r) {
        type_traits(w).to_float(static_cast<const char*>(weights) + r * w_stride, row.data(), k);
        for (int64_t c = 0; c < nc; ++c) {
            auto* a = reinterpret_cast<const float*>(static_cast<const char*>(acts) + c * act_stride);
            double s = 0;
            for (int64_t i = 0; i < k; ++i) s += double(row[i]) * a[i];
            out[r * out_row_stride + c] = float(s);
        }
    }
}

}  // namespace tessera::cpu
