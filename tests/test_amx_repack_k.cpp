// The K-quants' AMX weight layout (backends/cpu/amx_repack_k.h), no tiles needed: repack then unpack gives
// back the original Q4_K / Q5_K / Q6_K blocks bit for bit, and a record holds each value where the header
// says (its VNNI position in its 32-value chunk, low nibble and upper-bit planes), with the scales where the
// tile kernel reads them.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "backends/cpu/amx_repack_k.h"
#include "core/quant.h"
#include "core/types.h"

using namespace tessera;
namespace layout = tessera::cpu::amx_layout;

namespace {

constexpr DType kTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};

// The unsigned value v (0..255) of one GGUF block, read the way the format defines it (dequantize_row_*'s
// order), independently of the repacking code.
int gguf_value(DType t, const uint8_t* blk, int v) {
    if (t == DType::Q6_K) {
        const auto* b = reinterpret_cast<const block_q6_K*>(blk);
        const int h = v / 128, quarter = (v % 128) / 32, l = v % 32;
        const int lo = (quarter == 0 || quarter == 2) ? b->ql[64 * h + l] : b->ql[64 * h + l + 32];
        return ((quarter < 2 ? lo & 0xF : lo >> 4)) | (((b->qh[32 * h + l] >> (2 * quarter)) & 3) << 4);
    }
    const uint8_t* qs = t == DType::Q4_K ? reinterpret_cast<const block_q4_K*>(blk)->qs : reinterpret_cast<const block_q5_K*>(blk)->qs;
    const int j = v / 64, l = v % 32;
    int q = (v % 64) < 32 ? qs[32 * j + l] & 0xF : qs[32 * j + l] >> 4;
    if (t == DType::Q5_K) q |= ((reinterpret_cast<const block_q5_K*>(blk)->qh[l] >> (2 * j + ((v % 64) >= 32))) & 1) << 4;
    return q;
}

// Value v of panel row n read from a record as the header describes it.
int record_value(DType t, const uint8_t* rec, int n, int v) {
    const layout::KRecordParts part = layout::k_record_parts(t);
    const int chunk = v / 32, w = v % 32;
    const int pos = (w / 4) * 64 + 4 * n + w % 4;  // byte of the chunk's 512-byte VNNI B tile
    const uint8_t nib = rec[part.nibbles + size_t(chunk) * 256 + size_t(pos % 256)];
    int q = pos < 256 ? nib & 0xF : nib >> 4;
    if (t == DType::Q5_K) q |= ((rec[part.high + size_t(chunk) * 64 + size_t(pos % 64)] >> (pos / 64)) & 1) << 4;
    if (t == DType::Q6_K) q |= ((rec[part.high + size_t(chunk) * 128 + size_t(pos % 128)] >> (2 * (pos / 128))) & 3) << 4;
    return q;
}

}  // namespace

TEST_CASE("amx repack K: repack then unpack gives back the original Q4_K / Q5_K / Q6_K blocks (partial panels, strided rows)") {
    for (DType t : kTypes)
        for (int64_t rows : {1, 7, 16, 17, 40})
            for (int64_t k : {256, 512, 768}) {
                INFO(type_name(t) << " rows " << rows << " k " << k);
                const size_t rb = row_bytes(t, k), stride = rb + 10;  // rows need not be adjacent
                std::mt19937 rng(uint32_t(rows * 1000 + k) + uint32_t(t));
                std::vector<uint8_t> src(size_t(rows) * stride);
                for (auto& b : src) b = uint8_t(rng());  // every bit pattern, scales included, must survive
                std::vector<uint8_t> packed(layout::packed_bytes(t, rows, k) + 1, 0xee);
                layout::repack(t, src.data(), stride, rows, k, packed.data());
                CHECK(packed.back() == 0xee);  // nothing written past packed_bytes
                // The file's bytes, plus the padding rows of a last partial panel.
                CHECK(layout::packed_bytes(t, rows, k) == size_t((rows + 15) / 16 * 16) * rb);
                std::vector<uint8_t> back(src.size(), 0);
                layout::unpack(t, packed.data(), rows, k, back.data(), stride);
                for (int64_t r = 0; r < rows; ++r)
                    REQUIRE_MESSAGE(std::memcmp(back.data() + r * stride, src.data() + r * stride, rb) == 0, "row " << r);
            }
}

TEST_CASE("amx repack K: a record holds d, dmin, scales and each value where amx_repack_k.h says") {
    const int64_t rows = 21, k = 512;  // two panels (the second has 5 real rows), two super-blocks
    for (DType t : kTypes) {
        INFO(type_name(t));
        const size_t bb = type_traits(t).block_bytes, rb = row_bytes(t, k), rec = layout::record_bytes(t);
        CHECK(rec == 16 * bb);
        CHECK(layout::record_values(t) == 256);
        std::mt19937 rng(77 + uint32_t(t));
        std::vector<uint8_t> src(size_t(rows) * rb);
        for (auto& b : src) b = uint8_t(rng());
        std::vector<uint8_t> packed(layout::packed_bytes(t, rows, k));
        layout::repack(t, src.data(), rb, rows, k, packed.data());
        const layout::KRecordParts part = layout::k_record_parts(t);
        for (int64_t p = 0; p < 2; ++p)
            for (int64_t b = 0; b < 2; ++b) {
                const uint8_t* R = packed.data() + size_t(p * 2 + b) * rec;
                for (int n = 0; n < 16; ++n) {
                    const int64_t r = p * 16 + n;
                    const uint8_t* blk = src.data() + size_t(r) * rb + size_t(b) * bb;
                    if (r >= rows) {  // padding: d = 0 (and so contributes nothing), values 0
                        CHECK(R[part.d + 2 * n] == 0);
                        CHECK(R[part.d + 2 * n + 1] == 0);
                        for (int v = 0; v < 256; ++v) REQUIRE(record_value(t, R, n, v) == 0);
                        continue;
                    }
                    if (t == DType::Q6_K) {
                        const auto* q = reinterpret_cast<const block_q6_K*>(blk);
                        CHECK(std::memcmp(R + part.d + 2 * n, &q->d, 2) == 0);
                        for (int s = 0; s < 16; ++s) REQUIRE(int8_t(R[part.scales + size_t(16 * s + n)]) == q->scales[s]);
                    } else {
                        const auto* q = reinterpret_cast<const block_q4_K*>(blk);
                        CHECK(std::memcmp(R + part.d + 2 * n, &q->d, 2) == 0);
                        CHECK(std::memcmp(R + part.dmin + 2 * n, &q->dmin, 2) == 0);
                        CHECK(std::memcmp(R + part.scales + size_t(12 * n), q->scales, 12) == 0);
                    }
                    for (int v = 0; v < 256; ++v)
                        REQUIRE_MESSAGE(record_value(t, R, n, v) == gguf_value(t, blk, v), "row " << r << " value " << 256 * b + v);
                }
            }
    }
}

TEST_CASE("amx repack K: k that is not a multiple of 256 is an error naming it") {
    std::vector<uint8_t> buf(8192);
    CHECK_THROWS_WITH(layout::repack(DType::Q4_K, buf.data(), 144, 1, 128, buf.data()), doctest::Contains("multiple of 256"));
    CHECK_THROWS_WITH(layout::unpack(DType::Q6_K, buf.data(), 2, 320, buf.data(), 210), doctest::Contains("multiple of 256"));
}
