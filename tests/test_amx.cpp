// The amx cpu level's pieces that do not need tiles: the weight repacking (backends/cpu/amx_repack.h)
// round-trips exactly, and its records are the VNNI layout the tile kernels load.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "core/quant.h"
#include "core/types.h"

using namespace tessera;
namespace layout = tessera::cpu::amx_layout;

namespace {

// Random GGUF rows of type t: every byte random (scales included: the layout must carry any bit pattern).
std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t k, size_t stride, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(size_t(rows) * stride);
    for (auto& b : v) b = uint8_t(rng());
    (void)t;
    (void)k;
    return v;
}

}  // namespace

TEST_CASE("amx repack: repack then unpack gives back the original blocks (Q4_0, Q8_0, partial panels)") {
    for (DType t : {DType::Q4_0, DType::Q8_0})
        for (int64_t rows : {1, 7, 15, 16, 17, 40, 64})
            for (int64_t k : {32, 64, 96, 256}) {
                INFO(type_name(t) << " rows " << rows << " k " << k);
                const size_t row_bytes = tessera::row_bytes(t, k);
                const size_t stride = row_bytes + 6;  // rows need not be adjacent
                const auto src = random_rows(t, rows, k, stride, uint32_t(rows * 1000 + k));
                std::vector<uint8_t> packed(layout::packed_bytes(t, rows, k) + 1, 0xee);
                layout::repack(t, src.data(), stride, rows, k, packed.data());
                CHECK(packed.back() == 0xee);  // nothing written past packed_bytes
                // Same bytes as the file, plus the padding rows of a last partial panel.
                const int64_t padded = (rows + 15) / 16 * 16;
                CHECK(layout::packed_bytes(t, rows, k) == size_t(padded) * row_bytes);
                std::vector<uint8_t> back(src.size(), 0);
                layout::unpack(t, packed.data(), rows, k, back.data(), stride);
                for (int64_t r = 0; r < rows; ++r)
                    REQUIRE_MESSAGE(std::memcmp(back.data() + r * stride, src.data() + r * stride, row_bytes) == 0,
                                    "row " << r);
            }
}

TEST_CASE("amx repack: a record is the block scales then the tile's VNNI bytes") {
    const int64_t rows = 20, k = 64;  // two panels (the second has 4 real rows), two blocks
    std::vector<block_q8_0> q8(size_t(rows * k / 32));
    std::vector<block_q4_0> q4(q8.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < 2; ++b) {
            block_q8_0& x = q8[size_t(r * 2 + b)];
            block_q4_0& y = q4[size_t(r * 2 + b)];
            x.d = y.d = half_bits(1000 + r * 2 + b);
            for (int v = 0; v < 32; ++v) x.qs[v] = int8_t((r * 7 + b * 3 + v) % 251 - 125);
            for (int j = 0; j < 16; ++j) y.qs[j] = uint8_t(((r + b + j) % 16) | (((r * 3 + j) % 16) << 4));
        }
    std::vector<uint8_t> p8(layout::packed_bytes(DType::Q8_0, rows, k)), p4(layout::packed_bytes(DType::Q4_0, rows, k));
    layout::repack(DType::Q8_0, q8.data(), 2 * sizeof(block_q8_0), rows, k, p8.data());
    layout::repack(DType::Q4_0, q4.data(), 2 * sizeof(block_q4_0), rows, k, p4.data());
    const size_t rec8 = layout::record_bytes(DType::Q8_0), rec4 = layout::record_bytes(DType::Q4_0);
    CHECK(rec8 == 16 * sizeof(block_q8_0));
    CHECK(rec4 == 16 * sizeof(block_q4_0));
    for (int64_t p = 0; p < 2; ++p)
        for (int64_t b = 0; b < 2; ++b)
            for (int n = 0; n < 16; ++n) {
                const int64_t r = p * 16 + n;
                const uint8_t* R8 = p8.data() + size_t(p * 2 + b) * rec8;
                const uint8_t* R4 = p4.data() + size_t(p * 2 + b) * rec4;
                half_bits d8, d4;
                std::memcpy(&d8, R8 + 2 * n, 2);
                std::memcpy(&d4, R4 + 2 * n, 2);
                CHECK(d8 == (r < rows ? q8[size_t(r * 2 + b)].d : 0));
                CHECK(d4 == (r < rows ? q4[size_t(r * 2 + b)].d : 0));
                for (int v = 0; v < 32; ++v) {
                    const int pos = (v / 4) * 64 + 4 * n + v % 4;  // B tile: row v / 4, column n, byte v % 4
                    const int8_t want8 = r < rows ? q8[size_t(r * 2 + b)].qs[v] : 0;
                    REQUIRE(int8_t(R8[32 + pos]) == want8);
                    const uint8_t byte4 = R4[32 + pos % 256];
                    const int nib = pos < 256 ? byte4 & 15 : byte4 >> 4;
                    const block_q4_0& y = q4[size_t(std::min(r, rows - 1) * 2 + b)];
                    const int want4 = r < rows ? (v < 16 ? y.qs[v] & 15 : y.qs[v - 16] >> 4) : 8;
                    REQUIRE(nib == want4);
                }
            }
}

TEST_CASE("amx repack: bad shapes and types are errors naming them") {
    std::vector<uint8_t> buf(4096);
    CHECK_THROWS_WITH(layout::repack(DType::Q3_K, buf.data(), 110, 1, 256, buf.data()),
                      doctest::Contains("no AMX tile layout"));
    CHECK_THROWS_WITH(layout::repack(DType::Q8_0, buf.data(), 34, 1, 48, buf.data()), doctest::Contains("multiple of 32"));
    CHECK_THROWS_WITH(layout::unpack(DType::Q8_0, buf.data(), 0, 32, buf.data(), 34), doctest::Contains("0 rows"));
}
