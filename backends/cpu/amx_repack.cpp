// The AMX weight layout (see amx_repack.h): repack and its inverse, both plain loops over bytes.
#include "backends/cpu/amx_repack.h"

#include "backends/cpu/amx_repack_f16.h"
#include "backends/cpu/amx_repack_k.h"

#include <cstring>

#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::amx_layout {

namespace {

constexpr int kGroups = kBlockValues / 4;            // VNNI rows of one B tile
constexpr int kVnniBytes = kPanelRows * kBlockValues;  // 512

// Position in the 512-byte VNNI block of value v (< 32) of panel row n (< 16).
constexpr int vnni_pos(int n, int v) { return (v / 4) * (4 * kPanelRows) + 4 * n + v % 4; }

void check_shape(DType t, int64_t rows, int64_t k) {
    TESSERA_CHECK(repackable(t), "amx repack: type %s has no AMX tile layout (only Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16)",
                  type_name(t));
    TESSERA_CHECK(rows > 0 && k > 0 && k % record_values(t) == 0,
                  "amx repack: %lld rows of %lld values (k must be a positive multiple of %lld for %s)", (long long)rows,
                  (long long)k, (long long)record_values(t), type_name(t));
}

}  // namespace

bool repackable(DType t) { return t == DType::Q4_0 || t == DType::Q8_0 || is_k_quant(t) || is_float16(t); }

// F16 / BF16: any k (amx_repack_f16.h pads the last block with zeros).
int64_t record_values(DType t) { return is_k_quant(t) ? QK_K : is_float16(t) ? 1 : kBlockValues; }

size_t record_bytes(DType t) {
    if (is_float16(t)) return kPairBlockBytes;
    if (is_k_quant(t)) return k_record_bytes(t);
    return kScaleBytes + (t == DType::Q4_0 ? kVnniBytes / 2 : kVnniBytes);
}

size_t packed_bytes(DType t, int64_t rows, int64_t k) {
    if (is_float16(t)) return f16_packed_bytes(rows, k);
    const int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
    return size_t(panels) * size_t(k / record_values(t)) * record_bytes(t);
}

void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    check_shape(t, rows, k);
    if (is_k_quant(t)) return repack_k(t, src, src_row_stride, rows, k, dst);
    if (is_float16(t)) return repack_f16(src, src_row_stride, rows, k, dst);
    const int64_t nb = k / kBlockValues, panels = (rows + kPanelRows - 1) / kPanelRows;
    const size_t rec = record_bytes(t);
    const uint8_t* s = static_cast<const uint8_t*>(src);
    uint8_t* d = static_cast<uint8_t*>(dst);
    std::memset(dst, 0, packed_bytes(t, rows, k));
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* r = d + size_t(p * nb + b) * rec;
            uint8_t vnni[kVnniBytes];
            for (int n = 0; n < kPanelRows; ++n) {
                const int64_t row = p * kPanelRows + n;
                half_bits scale = 0;
                int8_t vals[kBlockValues] = {};  // Q4_0: nibbles 0..15; Q8_0: values. Padding rows: zero
                if (row < rows) {
                    const uint8_t* blk = s + size_t(row) * src_row_stride;
                    if (t == DType::Q8_0) {
                        const auto* q = reinterpret_cast<const block_q8_0*>(blk) + b;
                        scale = q->d;
                        std::memcpy(vals, q->qs, kBlockValues);
                    } else {
                        const auto* q = reinterpret_cast<const block_q4_0*>(blk) + b;
                        scale = q->d;
                        for (int j = 0; j < kBlockValues / 2; ++j) {
                            vals[j] = int8_t(q->qs[j] & 0x0F);
                            vals[j + 16] = int8_t(q->qs[j] >> 4);
                        }
                    }
                } else if (t == DType::Q4_0) {
                    for (auto& v : vals) v = 8;  // the nibble of value 0
                }
                std::memcpy(r + 2 * n, &scale, 2);
                for (int v = 0; v < kBlockValues; ++v) vnni[vnni_pos(n, v)] = uint8_t(vals[v]);
            }
            if (t == DType::Q8_0) {
                std::memcpy(r + kScaleBytes, vnni, kVnniBytes);
            } else {
                for (int j = 0; j < kVnniBytes / 2; ++j)
                    r[kScaleBytes + j] = uint8_t(vnni[j] | (vnni[j + kVnniBytes / 2] << 4));
            }
        }
}

void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    check_shape(t, rows, k);
    if (is_k_quant(t)) return unpack_k(t, src, rows, k, dst, dst_row_stride);
    if (is_float16(t)) return unpack_f16(src, rows, k, dst, dst_row_stride);
    const int64_t nb = k / kBlockValues, panels = (rows + kPanelRows - 1) / kPanelRows;
    const size_t rec = record_bytes(t);
    const uint8_t* s = static_cast<const uint8_t*>(src);
    uint8_t* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* r = s + size_t(p * nb + b) * rec;
            uint8_t vnni[kVnniBytes];
            if (t == DType::Q8_0) {
                std::memcpy(vnni, r + kScaleBytes, kVnniBytes);
            } else {
                for (int j = 0; j < kVnniBytes / 2; ++j) {
                    vnni[j] = r[kScaleBytes + j] & 0x0F;
                    vnni[j + kVnniBytes / 2] = r[kScaleBytes + j] >> 4;
                }
            }
            for (int n = 0; n < kPanelRows; ++n) {
                const int64_t row = p * kPanelRows + n;
                if (row >= rows) break;
                uint8_t* blk = d + size_t(row) * dst_row_stride;
                half_bits scale;
                std::memcpy(&scale, r + 2 * n, 2);
                if (t == DType::Q8_0) {
                    auto* q = reinterpret_cast<block_q8_0*>(blk) + b;
                    q->d = scale;
                    for (int v = 0; v < kBlockValues; ++v) q->qs[v] = int8_t(vnni[vnni_pos(n, v)]);
                } else {
                    auto* q = reinterpret_cast<block_q4_0*>(blk) + b;
                    q->d = scale;
                    for (int j = 0; j < kBlockValues / 2; ++j)
                        q->qs[j] = uint8_t(vnni[vnni_pos(n, j)] | (vnni[vnni_pos(n, j + 16)] << 4));
                }
            }
        }
}

}  // namespace tessera::cpu::amx_layout
