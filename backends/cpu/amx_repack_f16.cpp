// The F16 / BF16 tile layout (see amx_repack_f16.h): repack and its inverse.
#include "backends/cpu/amx_repack_f16.h"

#include <cstring>

#include "core/error.h"

namespace tessera::cpu::amx_layout {

namespace {

constexpr int kPanel = 16;

void check_shape(int64_t rows, int64_t k) {
    TESSERA_CHECK(rows > 0 && k > 0, "amx repack: %lld rows of %lld values (both must be positive)", (long long)rows,
                  (long long)k);
}

}  // namespace

size_t f16_packed_bytes(int64_t rows, int64_t k) {
    const int64_t panels = (rows + kPanel - 1) / kPanel;
    return size_t(panels) * size_t(f16_padded_k(k) / kPairBlockValues) * kPairBlockBytes;
}

void repack_f16(const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    check_shape(rows, k);
    const int64_t nb = f16_padded_k(k) / kPairBlockValues, panels = (rows + kPanel - 1) / kPanel;
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint16_t*>(dst);
    std::memset(dst, 0, f16_packed_bytes(rows, k));
    for (int64_t p = 0; p < panels; ++p)
        for (int n = 0; n < kPanel && p * kPanel + n < rows; ++n) {
            const auto* row = reinterpret_cast<const uint16_t*>(s + size_t(p * kPanel + n) * src_row_stride);
            for (int64_t v = 0; v < k; ++v) {
                uint16_t bits;
                std::memcpy(&bits, row + v, 2);  // rows need not be 2-byte aligned in a packed file view
                d[size_t(p * nb + v / kPairBlockValues) * (kPairBlockBytes / 2) + f16_vnni_index(n, int(v % kPairBlockValues))] = bits;
            }
        }
}

void unpack_f16(const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    check_shape(rows, k);
    const int64_t nb = f16_padded_k(k) / kPairBlockValues;
    const auto* s = static_cast<const uint16_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t p = r / kPanel;
        const int n = int(r % kPanel);
        for (int64_t v = 0; v < k; ++v) {
            const uint16_t bits = s[size_t(p * nb + v / kPairBlockValues) * (kPairBlockBytes / 2) + f16_vnni_index(n, int(v % kPairBlockValues))];
            std::memcpy(d + size_t(r) * dst_row_stride + size_t(v) * 2, &bits, 2);
        }
    }
}

}  // namespace tessera::cpu::amx_layout
