// Quant types: byte compatibility with llama.cpp's files, round-trip error per type, hand-built blocks
// decoded by hand, and the cpu backend's SIMD dot tiles against the reference conversions.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/quant.h"
#include "tests/cpu_levels.h"
#include "tests/testing.h"

using namespace tessera;

namespace {

bool shared_ok() {
    struct stat st;
    return stat(TESSERA_SHARED_DIR, &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<float> normal_floats(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(row_bytes(t, int64_t(x.size())));
    type_traits(t).from_float(x.data(), q.data(), int64_t(x.size()));
    return q;
}

std::vector<float> dequantize(DType t, const void* q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    type_traits(t).to_float(q, y.data(), n);
    return y;
}

const DType kQuantTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1,
                             DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K,
                             DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4};
const DType kWeightTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                              DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                              DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4};

}  // namespace

// ------------------------------------------------------------------------------------------------
// (a) llama.cpp's own files: the golden quantized models were made by llama.cpp from the same weights
// as the F32 files beside them. Quantizing the F32 tensors must give llama.cpp's bytes.

namespace {

struct GoldenCompare {
    int64_t tensors = 0, blocks = 0, identical = 0;
    double max_dequant_err_over_scale = 0;  // sanity: dequantized golden vs f32, relative to the row's max
};

GoldenCompare compare_with_golden(const std::string& f32_name, const std::string& quant_name) {
    auto ref = GGUFFile::open(std::string(TESSERA_SHARED_DIR) + "/golden/" + f32_name);
    auto q = GGUFFile::open(std::string(TESSERA_SHARED_DIR) + "/golden/" + quant_name);
    GoldenCompare res;
    for (const auto& t : q->tensors()) {
        const TypeTraits& tr = type_traits(t.type);
        if (!tr.quantized) continue;
        const auto* r = ref->find_tensor(t.name);
        REQUIRE_MESSAGE(r != nullptr, t.name);
        REQUIRE(r->type == DType::F32);
        for (int d = 0; d < 4; ++d) REQUIRE(r->ne[d] == t.ne[d]);
        const int64_t k = t.ne[0], rows = t.ne[1] * t.ne[2] * t.ne[3];
        const size_t rb = row_bytes(t.type, k);
        REQUIRE(rb * size_t(rows) == t.nbytes);
        std::vector<uint8_t> mine(rb);
        std::vector<float> deq(static_cast<size_t>(k));
        ++res.tensors;
        for (int64_t i = 0; i < rows; ++i) {
            const float* src = static_cast<const float*>(r->data) + i * k;
            const uint8_t* theirs = static_cast<const uint8_t*>(t.data) + size_t(i) * rb;
            tr.from_float(src, mine.data(), k);
            for (int64_t b = 0; b < k / tr.block_size; ++b) {
                ++res.blocks;
                res.identical += std::memcmp(mine.data() + b * tr.block_bytes, theirs + b * tr.block_bytes,
                                             tr.block_bytes) == 0;
            }
            tr.to_float(theirs, deq.data(), k);
            float amax = 0, emax = 0;
            for (int64_t j = 0; j < k; ++j) {
                amax = std::max(amax, std::fabs(src[j]));
                emax = std::max(emax, std::fabs(deq[j] - src[j]));
            }
            if (amax > 0) res.max_dequant_err_over_scale = std::max(res.max_dequant_err_over_scale, double(emax / amax));
        }
    }
    return res;
}

}  // namespace

TEST_CASE("golden files: our reference quantizers reproduce llama.cpp's bytes (Q8_0, Q4_0, Q4_K_M = Q4_K + Q6_K)") {
    if (!shared_ok()) return;
    const char* pairs[][2] = {
        {"llama-gqa.gguf", "llama-gqa-q8_0.gguf"}, {"llama-gqa.gguf", "llama-gqa-q4_0.gguf"},
        {"llama-gqa.gguf", "llama-gqa-q4_k_m.gguf"}, {"gemma2.gguf", "gemma2-q8_0.gguf"},
        {"gemma2.gguf", "gemma2-q4_0.gguf"}, {"gemma2.gguf", "gemma2-q4_k_m.gguf"},
    };
    for (auto& p : pairs) {
        CAPTURE(p[1]);
        const GoldenCompare c = compare_with_golden(p[0], p[1]);
        MESSAGE(p[1], ": ", c.identical, "/", c.blocks, " blocks identical over ", c.tensors, " tensors");
        CHECK(c.tensors > 0);
        CHECK(c.identical == c.blocks);
        // The worst element of any row is off by at most about one quantization step of the coarsest type
        // used (Q2..Q4: 1/8..1/4 of the row's max); more means the dequantizer reads the layout wrong.
        CHECK(c.max_dequant_err_over_scale < 0.25);
    }
}

TEST_CASE("golden files: IQ4_NL, IQ4_XS and MXFP4 quantizers reproduce llama.cpp's bytes") {
    if (!shared_ok()) return;
    // The extra cases were quantized by llama-quantize (Dec 2025) from the F32 files named here: llama-gqa through
    // IQ4_NL / IQ4_XS (plus Q5_K / Q6_K for attn_v and output), gpt-oss's experts through MXFP4 (+ Q8_0).
    const char* pairs[][2] = {
        {"llama-gqa.gguf", "extra/llama-gqa-iq4_nl.gguf"},
        {"llama-gqa.gguf", "extra/llama-gqa-iq4_xs.gguf"},
        {"extra/gpt-oss.gguf", "extra/gpt-oss-mxfp4.gguf"},
    };
    for (auto& p : pairs) {
        CAPTURE(p[1]);
        const GoldenCompare c = compare_with_golden(p[0], p[1]);
        MESSAGE(p[1], ": ", c.identical, "/", c.blocks, " blocks identical over ", c.tensors, " tensors");
        CHECK(c.tensors > 0);
        CHECK(c.identical == c.blocks);
        // MXFP4: a block's max lies in [8 d, 16 d) and its levels are at most 4 d apart up to the top level 12 d,
        // so no value is off by a quarter of the max or more (clipping included); the IQ4 grids do better.
        CHECK(c.max_dequant_err_over_scale < 0.25);
    }
}

// ------------------------------------------------------------------------------------------------
// (b) round trip on normal(0,1) data. The bound is what a plain uniform quantizer with each group's own
// step would give, step^2 / 12 averaged over groups (step = the group's range / levels, as the type's
// scale rule defines it). The reference quantizers either use that grid exactly (legacy types, Q3_K's
// start) or search for a better one; f16 scales and the 4/6-bit sub-block scales of the K-quants add a
// little, hence 5 %. The searching K-quants must also clearly beat the plain grid they start from.

namespace {

struct GridSpec {
    DType type;
    int group;       // values sharing one scale
    bool asym;       // scale from max - min (with min clamped to <= 0 for the K-quants) vs from max |x|
    bool clamp_min;  // K-quants with a min: the stored min is <= 0
    int levels;      // range / step
    bool searches;   // the reference quantizer searches the scale (must beat the plain grid)
};

double plain_grid_rmse(const std::vector<float>& x, const GridSpec& g) {
    double s = 0;
    const size_t ng = x.size() / size_t(g.group);
    for (size_t i = 0; i < ng; ++i) {
        const float* v = x.data() + i * size_t(g.group);
        float mn = v[0], mx = v[0], amax = 0;
        for (int j = 0; j < g.group; ++j) {
            mn = std::min(mn, v[j]);
            mx = std::max(mx, v[j]);
            amax = std::max(amax, std::fabs(v[j]));
        }
        if (g.clamp_min) mn = std::min(mn, 0.0f);
        const double step = (g.asym ? double(mx) - mn : amax) / g.levels;
        s += step * step / 12;
    }
    return std::sqrt(s / double(ng));
}

}  // namespace

TEST_CASE("round trip: rms error per type within the plain-grid bound its bits imply") {
    const std::vector<float> x = normal_floats(1 << 16, 42);
    const GridSpec specs[] = {
        {DType::Q4_0, 32, false, false, 8, false},   {DType::Q4_1, 32, true, false, 15, false},
        {DType::Q5_0, 32, false, false, 16, false},  {DType::Q5_1, 32, true, false, 31, false},
        {DType::Q8_0, 32, false, false, 127, false}, {DType::Q8_1, 32, false, false, 127, false},
        {DType::Q2_K, 16, true, true, 3, true},      {DType::Q3_K, 16, false, false, 4, false},
        {DType::Q4_K, 32, true, true, 15, true},     {DType::Q5_K, 32, true, true, 31, true},
        {DType::Q6_K, 16, false, false, 32, true},   {DType::Q8_K, 256, false, false, 127, false},
    };
    for (const auto& g : specs) {
        const std::string tname = type_name(g.type);
        CAPTURE(tname);
        const auto q = quantize(g.type, x);
        const auto y = dequantize(g.type, q.data(), int64_t(x.size()));
        double s = 0;
        for (size_t i = 0; i < x.size(); ++i) s += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        const double rmse = std::sqrt(s / double(x.size()));
        const double bound = plain_grid_rmse(x, g);
        MESSAGE(tname, ": rmse ", rmse, ", plain grid ", bound);
        CHECK(rmse <= 1.05 * bound);
        // Searching quantizers measured at 0.85..0.93 of the plain grid; 0.97 catches a search that
        // silently stopped working (it would land at ~1.0).
        if (g.searches) CHECK(rmse <= 0.97 * bound);
    }
}

TEST_CASE("round trip: values already on a type's grid come back exactly") {
    // Q8_0 with amax 127 * 2^-4: d = 2^-4 exactly in f16, every multiple of d in range is representable.
    std::vector<float> x(64);
    for (int i = 0; i < 64; ++i) x[size_t(i)] = float((i * 37) % 255 - 127) / 16.0f;
    x[0] = 127.0f / 16;
    x[32] = -127.0f / 16;
    CHECK(dequantize(DType::Q8_0, quantize(DType::Q8_0, x).data(), 64) == x);
    // Q4_0: max magnitude -8 * 0.25, all values integers times 0.25 within -8..7.
    std::vector<float> y(32);
    for (int i = 0; i < 32; ++i) y[size_t(i)] = float(i % 16 - 8) * 0.25f;
    CHECK(dequantize(DType::Q4_0, quantize(DType::Q4_0, y).data(), 32) == y);
}

TEST_CASE("quantizers: all-zero input gives zero output; bad lengths throw") {
    std::vector<float> z(512, 0.0f);
    for (DType t : kQuantTypes) {
        const std::string tname = type_name(t);
        CAPTURE(tname);
        const auto y = dequantize(t, quantize(t, z).data(), 512);
        for (float v : y) CHECK(v == 0.0f);
        std::vector<uint8_t> buf(4096);
        std::vector<float> f(1000);
        const int64_t bad = type_traits(t).block_size + 1;
        CHECK_THROWS_AS(type_traits(t).from_float(f.data(), buf.data(), bad), Error);
        CHECK_THROWS_AS(type_traits(t).to_float(buf.data(), f.data(), bad), Error);
    }
}

// ------------------------------------------------------------------------------------------------
// (c) hand-built blocks, decoded by hand from the layout (not by running the code under test).

TEST_CASE("hand-built Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 blocks") {
    block_q4_0 b4{};
    b4.d = fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; ++j) b4.qs[j] = uint8_t(j | ((15 - j) << 4));  // low nibble: element j, high: j + 16
    float y[32];
    dequantize_row_q4_0(&b4, y, 32);
    for (int j = 0; j < 16; ++j) {
        CHECK(y[j] == (j - 8) * 0.5f);
        CHECK(y[j + 16] == ((15 - j) - 8) * 0.5f);
    }

    block_q4_1 b41{};
    b41.d = fp32_to_fp16(0.25f);
    b41.m = fp32_to_fp16(-1.0f);
    for (int j = 0; j < 16; ++j) b41.qs[j] = uint8_t(j | (3 << 4));
    dequantize_row_q4_1(&b41, y, 32);
    CHECK(y[0] == -1.0f);
    CHECK(y[15] == 15 * 0.25f - 1.0f);
    CHECK(y[20] == 3 * 0.25f - 1.0f);

    // Q5_0: qh bit j is element j's 5th bit, bit j + 16 element j + 16's. Element 1: low 3, high bit set
    // -> 19 - 16 = 3. Element 17: low 0, high set -> 0. Element 2: low 0, high clear -> -16.
    block_q5_0 b5{};
    b5.d = fp32_to_fp16(2.0f);
    b5.qs[1] = 0x03;
    const uint32_t qh = (1u << 1) | (1u << 17);
    std::memcpy(b5.qh, &qh, 4);
    dequantize_row_q5_0(&b5, y, 32);
    CHECK(y[1] == 3 * 2.0f);
    CHECK(y[17] == 0.0f);
    CHECK(y[2] == -16 * 2.0f);

    block_q5_1 b51{};
    b51.d = fp32_to_fp16(1.0f);
    b51.m = fp32_to_fp16(0.5f);
    b51.qs[0] = 0xF0;  // element 0 low 0, element 16 low 15
    const uint32_t qh1 = 1u << 16;  // element 16's 5th bit
    std::memcpy(b51.qh, &qh1, 4);
    dequantize_row_q5_1(&b51, y, 32);
    CHECK(y[0] == 0.5f);
    CHECK(y[16] == 31.5f);

    block_q8_0 b8{};
    b8.d = fp32_to_fp16(0.125f);
    for (int j = 0; j < 32; ++j) b8.qs[j] = int8_t(j - 16);
    dequantize_row_q8_0(&b8, y, 32);
    for (int j = 0; j < 32; ++j) CHECK(y[j] == (j - 16) * 0.125f);
}

TEST_CASE("hand-built K-quant blocks") {
    float y[256];

    // Q2_K: sub-block 0 scale byte 0x21 (scale 1, min 2); qs[0] = 0b11'10'01'00 -> element 0 (bits 0-1) = 0,
    // element 32 (bits 2-3) = 1 in sub-block 2, element 64 = 2 in sub-block 4, element 96 = 3 in sub-block 6.
    block_q2_K q2{};
    q2.d = fp32_to_fp16(1.0f);
    q2.dmin = fp32_to_fp16(0.5f);
    q2.scales[0] = 0x21;
    q2.scales[2] = 0x12;  // scale 2, min 1
    q2.scales[4] = 0x03;  // scale 3, min 0
    q2.scales[6] = 0x50;  // scale 0, min 5
    q2.qs[0] = 0xE4;
    dequantize_row_q2_K(&q2, y, 256);
    CHECK(y[0] == 1 * 0 - 0.5f * 2);
    CHECK(y[32] == 2 * 1 - 0.5f * 1);
    CHECK(y[64] == 3 * 2 - 0.0f);
    CHECK(y[96] == 0 * 3 - 0.5f * 5);

    // Q3_K: scale j = (low nibble | 2 high bits << 4) - 32. Scale 0: low 0xF in scales[0], high bits 0b10 at
    // scales[8] bits 0-1 -> 47 - 32 = 15. Element 0: q bits 0b01, hmask bit 0 set -> 1; element 1: hmask clear,
    // q 0b11 -> 3 - 4 = -1.
    block_q3_K q3{};
    q3.d = fp32_to_fp16(0.5f);
    q3.scales[0] = 0x0F;
    q3.scales[8] = 0x02;
    q3.qs[0] = 0x01;
    q3.qs[1] = 0x03;
    q3.hmask[0] = 0x01;
    dequantize_row_q3_K(&q3, y, 256);
    CHECK(y[0] == 0.5f * 15 * 1);
    CHECK(y[1] == 0.5f * 15 * -1);
    // Scale 9 (elements 144..159): low nibble in scales[1] high half, high bits at scales[8 + 9 % 4] bits 2 * (9 / 4) = 4-5.
    // Element 144 sits at qs[32 + 16] bits 0-1 (second 128 half, first shift), hmask[16] bit 4.
    q3.scales[1] = 0x30;  // low nibble of scale 9 = 3
    q3.scales[9] = 0x10;  // high bits of scale 9 (bits 4-5) = 01 -> 3 | 16 = 19 -> -13
    q3.qs[48] = 0x02;
    q3.hmask[16] = 0x10;
    dequantize_row_q3_K(&q3, y, 256);
    CHECK(y[144] == 0.5f * -13 * 2);

    // Q4_K: 6-bit scale/min pairs. j < 4: scales[j] & 63, scales[j + 4] & 63. j >= 4: low 4 bits from
    // scales[j + 4] (scale low nibble, min high nibble), top 2 bits from scales[j - 4] >> 6 and scales[j] >> 6.
    block_q4_K q4{};
    q4.d = fp32_to_fp16(1.0f);
    q4.dmin = fp32_to_fp16(0.25f);
    q4.scales[0] = 5;               // sub-block 0 scale 5
    q4.scales[4] = 3 | (2 << 6);    // sub-block 0 min 3; top bits of sub-block 4's min = 2
    q4.scales[0] |= (1 << 6);       // top bits of sub-block 4's scale = 1
    q4.scales[8] = 0x7 | (0x9 << 4);  // sub-block 4: scale low 7, min low 9 -> scale 16 + 7 = 23, min 32 + 9 = 41
    q4.qs[0] = 0x2A;               // element 0 = 10 (sub-block 0), element 32 = 2 (sub-block 1)
    q4.qs[64] = 0x04;              // element 128 (sub-block 4) = 4
    dequantize_row_q4_K(&q4, y, 256);
    CHECK(y[0] == 5.0f * 10 - 0.25f * 3);
    CHECK(y[128] == 23.0f * 4 - 0.25f * 41);
    CHECK(y[32] == 0.0f * 2 - 0.0f);

    // Q5_K: as Q4_K plus qh: element 64p + l has its 5th bit at bit 2p of qh[l], element 64p + 32 + l at 2p + 1.
    block_q5_K q5{};
    q5.d = fp32_to_fp16(1.0f);
    q5.dmin = fp32_to_fp16(0.0f);
    q5.scales[1] = 2;   // sub-block 1 (elements 32..63) scale 2
    q5.scales[2] = 1;   // sub-block 2 (elements 64..95) scale 1
    q5.qs[3] = 0x50;    // element 35 low nibble 5
    q5.qh[3] = 0x02 | 0x04;  // element 35 (p=0, high half) + element 67 (p=1, low half) 5th bits
    dequantize_row_q5_K(&q5, y, 256);
    CHECK(y[35] == 2.0f * (5 + 16));
    CHECK(y[67] == 1.0f * 16);

    // Q6_K: element 64 + l: low 4 bits = ql[l] >> 4, high 2 bits = (qh[l] >> 4) & 3, scale index 4 + l / 16.
    block_q6_K q6{};
    q6.d = fp32_to_fp16(0.5f);
    q6.scales[4] = -3;
    q6.ql[1] = 0x90;      // element 65 low bits 9
    q6.qh[1] = 0x30;      // element 65 high bits 3 -> 9 + 48 = 57 -> 57 - 32 = 25
    q6.scales[0] = 2;     // elements 0..15: all levels 0 -> -32
    dequantize_row_q6_K(&q6, y, 256);
    CHECK(y[65] == 0.5f * -3 * 25);
    CHECK(y[0] == 0.5f * 2 * -32);

    block_q8_K q8{};
    q8.d = 0.75f;
    q8.qs[200] = -100;
    dequantize_row_q8_K(&q8, y, 256);
    CHECK(y[200] == -75.0f);
    CHECK(y[0] == 0.0f);
}

// The grids as llama.cpp's ggml-common.h lists them (IQ4: kvalues_iq4nl; MXFP4: the E2M1 values doubled).
const int kIQ4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
const float kE2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

TEST_CASE("hand-built IQ4_NL / IQ4_XS / MXFP4 blocks") {
    float y[256];
    block_iq4_nl nl{};
    nl.d = fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; ++j) nl.qs[j] = uint8_t(j | ((15 - j) << 4));
    dequantize_row_iq4_nl(&nl, y, 32);
    for (int j = 0; j < 16; ++j) {
        CHECK(y[j] == 0.5f * kIQ4Levels[j]);
        CHECK(y[j + 16] == 0.5f * kIQ4Levels[15 - j]);
    }

    // IQ4_XS: group 3's 6-bit scale 40 = low nibble 8 (scales_l[1], high nibble) | 2 << 4 (scales_h bits 6-7),
    // so its values are d * 8 * level; group 0's scale bits are all zero: d * (0 - 32) * level.
    block_iq4_xs xs{};
    xs.d = fp32_to_fp16(0.25f);
    xs.scales_l[1] = 0x80;
    xs.scales_h = 2 << 6;
    xs.qs[3 * 16 + 0] = 0x0F;  // element 96: level 15; element 112: level 0
    xs.qs[0] = 0x8F;           // element 0: level 15; element 16: level 8
    dequantize_row_iq4_xs(&xs, y, 256);
    CHECK(y[96] == 0.25f * 8 * 113);
    CHECK(y[112] == 0.25f * 8 * -127);
    CHECK(y[97] == 0.25f * 8 * -127);
    CHECK(y[0] == 0.25f * -32 * 113);
    CHECK(y[16] == 0.25f * -32 * 1);
    CHECK(y[1] == 0.25f * -32 * -127);
    CHECK(y[32] == 0.25f * -32 * -127);  // group 1: scale bits zero too

    // MXFP4: e = 127 is the scale 2^0, so levels are the E2M1 values themselves; e = 0 and 255 are the ends
    // (2^-127, subnormal, and 2^128 as the E8M0 value).
    block_mxfp4 mx[3]{};
    mx[0].e = 127;
    for (int j = 0; j < 16; ++j) mx[0].qs[j] = uint8_t(j | ((15 - j) << 4));
    mx[1].e = 0;
    mx[1].qs[0] = 0x07;
    mx[2].e = 255;
    mx[2].qs[0] = 0x0F;
    dequantize_row_mxfp4(mx, y, 96);
    for (int j = 0; j < 16; ++j) {
        CHECK(y[j] == kE2M1[j]);
        CHECK(y[j + 16] == kE2M1[15 - j]);
    }
    CHECK(y[32] == std::ldexp(6.0f, -127));
    CHECK(y[33] == 0.0f);
    CHECK(y[64] == std::ldexp(-6.0f, 127));
    CHECK(y[80] == 0.0f);
}

TEST_CASE("IQ4_NL / IQ4_XS / MXFP4: values on the grid come back exactly") {
    // IQ4_NL: 0.5 * level, with the grid's end -127 the largest magnitude: the search's step at the grid's
    // end lands on d = 0.5 exactly.
    std::vector<float> nl(64);
    for (int i = 0; i < 64; ++i) nl[size_t(i)] = 0.5f * kIQ4Levels[(i * 7) % 16];
    nl[5] = nl[40] = 0.5f * -127;
    CHECK(dequantize(DType::IQ4_NL, quantize(DType::IQ4_NL, nl).data(), 64) == nl);
    // IQ4_XS: group g's scale (g + 1) / 16 is -4 (g + 1) times the super-scale -1/64 (exact in f16).
    std::vector<float> xs(256);
    for (int i = 0; i < 256; ++i) xs[size_t(i)] = float(i / 32 + 1) / 16 * kIQ4Levels[(i * 5) % 16];
    for (int g = 0; g < 8; ++g) xs[size_t(32 * g + 3)] = float(g + 1) / 16 * -127;
    CHECK(dequantize(DType::IQ4_XS, quantize(DType::IQ4_XS, xs).data(), 256) == xs);
    // MXFP4: E2M1 values times 2^k; the block's largest magnitude 6 * 2^k sets e = 127 + k.
    std::vector<float> mx(96);
    for (int i = 0; i < 96; ++i) mx[size_t(i)] = std::ldexp(kE2M1[(i * 3) % 16], i / 32 * 5 - 4);
    for (int b = 0; b < 3; ++b) mx[size_t(32 * b + 9)] = std::ldexp(-6.0f, b * 5 - 4);
    const auto q = quantize(DType::MXFP4, mx);
    CHECK(dequantize(DType::MXFP4, q.data(), 96) == mx);
    CHECK(q[0] == 127 - 4);
}

TEST_CASE("IQ4_NL / IQ4_XS / MXFP4 round trip against Q4_0 on normal data") {
    // Same data through Q4_0 (4.5 bits per weight, uniform grid, scale from the block max). IQ4_NL (4.5 bits)
    // and IQ4_XS (4.25) search their scale over a grid shaped for bell-shaped data: measured 0.89x Q4_0's
    // error; 0.95 catches a search that stopped working. MXFP4 (4.25) has power-of-two scales only and a
    // coarse top (levels 4 and 6 in E2M1 units): measured 1.34x; a scale exponent one too large (coarser levels)
    // or too small (many values clipped) gives 1.66x / 3.4x (a scalar model of the rule), above the 1.45 allowed.
    const std::vector<float> x = normal_floats(1 << 16, 43);
    auto rmse = [&](DType t) {
        const auto y = dequantize(t, quantize(t, x).data(), int64_t(x.size()));
        double s = 0;
        for (size_t i = 0; i < x.size(); ++i) s += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        return std::sqrt(s / double(x.size()));
    };
    const double q4 = rmse(DType::Q4_0), nl = rmse(DType::IQ4_NL), xs = rmse(DType::IQ4_XS), mx = rmse(DType::MXFP4);
    MESSAGE("rmse q4_0 ", q4, ", iq4_nl ", nl, ", iq4_xs ", xs, ", mxfp4 ", mx);
    CHECK(nl <= 0.95 * q4);
    CHECK(xs <= 0.95 * q4);
    CHECK(mx <= 1.45 * q4);
}

TEST_CASE("Q8_K quantizer keeps its block sums consistent") {
    const auto x = normal_floats(1024, 7);
    const auto q = quantize(DType::Q8_K, x);
    const auto* b = reinterpret_cast<const block_q8_K*>(q.data());
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b[i].qs[16 * j + l];
            CHECK(b[i].bsums[j] == s);
        }
}

// ------------------------------------------------------------------------------------------------
// (d) cpu dot tiles against the reference: dequantized weights dotted (in double) with
//   - the dequantized quantized activations: the kernels do exact integer block sums and round only when
//     scaling/accumulating in float, a few ulp (2^-24) per block; 1e-5 of sum |w x| covers that with room
//     and is still ~100x below any layout mistake (which is off by O(1) of the sum).
//   - the original f32 activations: additionally off by the activation rounding, |x - x_q| <= d / 2 plus the
//     f16 rounding of Q8_0's scale (127 * d * 2^-11), i.e. < 0.57 * d per element with d = the block's
//     max |x| / 127; the bound is sum |w_i| * 0.57 * d_block(i).

namespace {

struct DotCase {
    int64_t nr, nc, nblocks;
    size_t w_pad, a_pad;  // extra bytes between rows (strided inputs; multiples of 4 keep Q8_K's float aligned)
    int64_t out_pad;
};

void check_dot_tile(const cpu::CpuKernels& kl, DType wt, const DotCase& dc, uint64_t seed) {
    const int64_t bs = type_traits(wt).block_size;
    const int64_t k = dc.nblocks * bs;
    const DType at = kl.activation_type(wt);
    const size_t wrow = row_bytes(wt, k) + dc.w_pad;
    const size_t arow = kl.activation_row_bytes(wt, k) + dc.a_pad;
    std::vector<uint8_t> W(wrow * size_t(dc.nr)), A(arow * size_t(dc.nc));
    std::vector<float> wdeq(size_t(dc.nr * k)), xf(size_t(dc.nc * k)), xdeq(size_t(dc.nc * k));
    for (int64_t r = 0; r < dc.nr; ++r) {
        const auto src = normal_floats(size_t(k), seed + uint64_t(r));
        type_traits(wt).from_float(src.data(), W.data() + size_t(r) * wrow, k);
        type_traits(wt).to_float(W.data() + size_t(r) * wrow, wdeq.data() + r * k, k);
    }
    for (int64_t c = 0; c < dc.nc; ++c) {
        auto src = normal_floats(size_t(k), seed * 7919 + uint64_t(c));
        for (auto& v : src) v *= 3.0f;  // activations larger than weights, as after a norm with gain
        std::copy(src.begin(), src.end(), xf.begin() + c * k);
        kl.quantize_activations(wt, src.data(), A.data() + size_t(c) * arow, k);
        type_traits(at).to_float(A.data() + size_t(c) * arow, xdeq.data() + c * k, k);
    }
    const int64_t ors = dc.nc + dc.out_pad;
    std::vector<float> out(size_t(dc.nr * ors), -12345.0f);
    kl.dot_tile(wt, k, W.data(), wrow, dc.nr, A.data(), arow, dc.nc, out.data(), ors);
    const int64_t ablock = type_traits(at).block_size;
    for (int64_t r = 0; r < dc.nr; ++r) {
        for (int64_t c = 0; c < dc.nc; ++c) {
            const float* w = wdeq.data() + r * k;
            const float* x = xf.data() + c * k;
            const float* xq = xdeq.data() + c * k;
            double ref_q = 0, ref_f = 0, mag_q = 0, act_bound = 0;
            for (int64_t b0 = 0; b0 < k; b0 += ablock) {
                float amax = 0;
                for (int64_t i = b0; i < b0 + ablock; ++i) amax = std::max(amax, std::fabs(x[i]));
                for (int64_t i = b0; i < b0 + ablock; ++i) {
                    ref_q += double(w[i]) * xq[i];
                    ref_f += double(w[i]) * x[i];
                    mag_q += std::fabs(double(w[i]) * xq[i]);
                    act_bound += std::fabs(double(w[i])) * 0.57 * amax / 127;
                }
            }
            const double got = out[size_t(r * ors + c)];
            CAPTURE(r);
            CAPTURE(c);
            CHECK(std::fabs(got - ref_q) <= 1e-5 * mag_q + 1e-30);
            CHECK(std::fabs(got - ref_f) <= act_bound + 1e-5 * mag_q);
        }
        for (int64_t c = dc.nc; c < ors; ++c) CHECK(out[size_t(r * ors + c)] == -12345.0f);  // padding untouched
    }
}

}  // namespace

TEST_CASE("dot_tile matches dequantize + double dot for every weight type, odd shapes and strides") {
    const DotCase cases[] = {
        {1, 1, 1, 0, 0, 0}, {7, 3, 2, 0, 0, 0},  {5, 9, 3, 8, 4, 3}, {4, 4, 1, 0, 0, 0},
        {9, 1, 5, 2, 0, 0}, {13, 6, 2, 0, 12, 1}, {3, 17, 1, 0, 0, 0}, {2, 7, 2, 0, 0, 0}, {6, 2, 3, 0, 4, 0},
    };
    for (const cpu::CpuKernels* kl : testing::cpu_level_tables()) {
        const std::string level = kl->name();
        CAPTURE(level);
        uint64_t seed = 1;
        for (DType wt : kWeightTypes) {
            const std::string tname = type_name(wt);
            CAPTURE(tname);
            for (const auto& dc : cases) {
                CAPTURE(dc.nr);
                CAPTURE(dc.nc);
                CAPTURE(dc.nblocks);
                check_dot_tile(*kl, wt, dc, seed++);
            }
        }
    }
}

TEST_CASE("dot_tile: many blocks (long k) stay within the bounds") {
    for (const cpu::CpuKernels* kl : testing::cpu_level_tables()) {
        const std::string level = kl->name();
        CAPTURE(level);
        for (DType wt : kWeightTypes) {
            const std::string tname = type_name(wt);
            CAPTURE(tname);
            const int64_t nblocks = type_traits(wt).block_size == 32 ? 131 : 17;  // k = 4192 / 4352
            check_dot_tile(*kl, wt, {6, 5, nblocks, 0, 0, 0}, 99);
        }
    }
}

TEST_CASE("dot_tile: nibble weights at their extremes against activations at +-127 (int16 sums do not wrap)") {
    // Q4_0 / Q4_1 blocks whose nibbles are all 0 or all 15, against Q8_0 activations all +127 or -127: the
    // largest products the integer paths meet (the four-row kernels sum two halves' u8 x s8 pairs in int16).
    // Every combination of 4 rows x 1..8 columns, each weight row and activation column its own sign.
    for (const cpu::CpuKernels* kl : testing::cpu_level_tables()) {
        const std::string level = kl->name();
        CAPTURE(level);
        for (DType wt : {DType::Q4_0, DType::Q4_1}) {
            const std::string tname = type_name(wt);
            CAPTURE(tname);
            const int64_t nb = 3, k = nb * 32;
            const size_t wrow = row_bytes(wt, k), arow = kl->activation_row_bytes(wt, k);
            for (int64_t nc = 1; nc <= 8; ++nc) {
                CAPTURE(nc);
                const int64_t nr = 4;
                std::vector<uint8_t> W(wrow * size_t(nr)), A(arow * size_t(nc));
                std::vector<float> wdeq(size_t(nr * k)), xdeq(size_t(nc * k));
                for (int64_t r = 0; r < nr; ++r) {
                    // Q4_0: one value at -8 sets the scale, the others at +7 -> nibble 15 (or all -8 -> nibble 0).
                    // Q4_1: a min and a max per block -> nibbles 0 and 15, the rest at max -> 15.
                    std::vector<float> src(size_t(k), (r % 2) ? 7.0f : -8.0f);
                    for (int64_t b = 0; b < nb; ++b) src[size_t(b * 32)] = -8.0f;
                    if (wt == DType::Q4_1)
                        for (int64_t b = 0; b < nb; ++b) src[size_t(b * 32 + 1)] = (r % 2) ? -8.0f : 7.0f;
                    type_traits(wt).from_float(src.data(), W.data() + size_t(r) * wrow, k);
                    type_traits(wt).to_float(W.data() + size_t(r) * wrow, wdeq.data() + r * k, k);
                }
                for (int64_t c = 0; c < nc; ++c) {
                    const std::vector<float> src(size_t(k), (c % 3 == 1) ? -3.0f : 3.0f);  // every q = +-127
                    kl->quantize_activations(wt, src.data(), A.data() + size_t(c) * arow, k);
                    type_traits(kl->activation_type(wt)).to_float(A.data() + size_t(c) * arow, xdeq.data() + c * k, k);
                }
                std::vector<float> out(size_t(nr * nc));
                kl->dot_tile(wt, k, W.data(), wrow, nr, A.data(), arow, nc, out.data(), nc);
                for (int64_t r = 0; r < nr; ++r)
                    for (int64_t c = 0; c < nc; ++c) {
                        double want = 0, mag = 0;
                        for (int64_t i = 0; i < k; ++i) {
                            want += double(wdeq[size_t(r * k + i)]) * xdeq[size_t(c * k + i)];
                            mag += std::fabs(double(wdeq[size_t(r * k + i)]) * xdeq[size_t(c * k + i)]);
                        }
                        CAPTURE(r);
                        CAPTURE(c);
                        CHECK(std::fabs(out[size_t(r * nc + c)] - want) <= 1e-5 * mag);
                    }
            }
        }
    }
}

TEST_CASE("dot_tile: each level runs the kernels of its width (avx512 and its emulated twin: 512-bit)") {
    // Guards against a level silently falling back to narrower code (a missing macro, a build without SIMDe
    // whose "emulated" twin would then test nothing new).
    const DType wide[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::IQ4_NL, DType::MXFP4,
                          DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
    for (const cpu::CpuKernels* kl : testing::cpu_level_tables()) {
        const std::string level = kl->name();
        CAPTURE(level);
        // The aarch64 levels (after Portable in the enum's aarch64 part) run NEON tiles for every quantized
        // type: there the width only has to say "a SIMD tile, not the scalar fallback".
        const bool arm = kl->level >= cpu::CpuLevel::Neon;
        const int want = kl->level == cpu::CpuLevel::Avx512 || kl->level == cpu::CpuLevel::Amx ? 512
                         : kl->level == cpu::CpuLevel::Avx2                                    ? 256
                                                                                                : 0;
        for (DType wt : wide) {
            const std::string tname = type_name(wt);
            CAPTURE(tname);
            if (arm) CHECK(kl->dot_tile_width(wt) != 0);
            else CHECK(kl->dot_tile_width(wt) == want);
        }
        if (arm) CHECK(kl->dot_tile_width(DType::IQ4_XS) != 0);
        else CHECK(kl->dot_tile_width(DType::IQ4_XS) == (want ? 256 : 0));  // signed levels: the 256-bit sign trick
        CHECK(kl->dot_tile_width(DType::F16) == 0);
    }
}

TEST_CASE("quantize_activations writes core's Q8_0 / Q8_K bytes at every level") {
    // Random rows, and blocks made to hit each rounding rule: with max |x| = 127 the Q8_0 scale is 1 and
    // x.5 values are exact ties (half away from zero); with max x = -127 the Q8_K scale is 1 (ties to even);
    // equal magnitudes of opposite sign (the first one sets Q8_K's sign); an all-zero block; tiny values.
    std::vector<float> x = normal_floats(256 * 5, 4242);
    for (auto& v : x) v *= 3.0f;
    const float ties[] = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, 3.5f, 126.5f, -126.5f, 0.49999997f, -0.50000006f};
    for (size_t i = 0; i < 32; ++i) x[i] = ties[i % 10] * (i % 3 == 2 ? -1.0f : 1.0f);
    x[0] = 127.0f;
    for (size_t i = 256; i < 512; ++i) x[i] = ties[i % 10] * (i % 4 == 1 ? -1.0f : 1.0f);
    x[256] = -127.0f;
    x[300] = 127.0f;  // same magnitude later, other sign: the scale keeps x[256]'s sign
    for (size_t i = 512; i < 768; ++i) x[i] = 0.0f;
    for (size_t i = 768; i < 800; ++i) x[i] = 1e-30f * float(int(i % 7) - 3);
    for (const cpu::CpuKernels* kl : testing::cpu_level_tables()) {
        const std::string level = kl->name();
        CAPTURE(level);
        for (DType w : {DType::Q4_0, DType::Q4_K}) {
            const DType a = kl->activation_type(w);
            const std::string tname = type_name(a);
            CAPTURE(tname);
            const int64_t k = int64_t(x.size());
            std::vector<uint8_t> got(kl->activation_row_bytes(w, k), 0xAB), want(got.size(), 0xCD);
            kl->quantize_activations(w, x.data(), got.data(), k);
            type_traits(a).from_float(x.data(), want.data(), k);
            size_t first_diff = got.size();
            for (size_t i = 0; i < got.size(); ++i)
                if (got[i] != want[i]) {
                    first_diff = i;
                    break;
                }
            CAPTURE(first_diff);
            CHECK(first_diff == got.size());
        }
    }
}

TEST_CASE("dot_tile: activation types follow the weight's block family") {
    const cpu::CpuKernels& kl = cpu::kernels_in_use();
    for (DType wt : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0})
        CHECK(kl.activation_type(wt) == DType::Q8_0);
    for (DType wt : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
        CHECK(kl.activation_type(wt) == DType::Q8_K);
    CHECK(kl.activation_type(DType::F16) == DType::F32);
    CHECK(kl.activation_row_bytes(DType::Q4_0, 64) == 2 * sizeof(block_q8_0));
    CHECK(kl.activation_row_bytes(DType::Q4_K, 512) == 2 * sizeof(block_q8_K));
}

TEST_CASE("dot_tile: f16 weights take the float path") {
    const cpu::CpuKernels& kl = cpu::kernels_in_use();
    const int64_t k = 40, nr = 3, nc = 2;
    const auto wf = normal_floats(size_t(nr * k), 5), xf = normal_floats(size_t(nc * k), 6);
    std::vector<uint16_t> w16(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) w16[i] = fp32_to_fp16(wf[i]);
    std::vector<uint8_t> act(kl.activation_row_bytes(DType::F16, k) * size_t(nc));
    for (int64_t c = 0; c < nc; ++c)
        kl.quantize_activations(DType::F16, xf.data() + c * k, act.data() + size_t(c) * kl.activation_row_bytes(DType::F16, k), k);
    std::vector<float> out(size_t(nr * nc));
    kl.dot_tile(DType::F16, k, w16.data(), size_t(k) * 2, nr, act.data(), size_t(k) * 4, nc, out.data(), nc);
    for (int64_t r = 0; r < nr; ++r)
        for (int64_t c = 0; c < nc; ++c) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < k; ++i) {
                ref += double(fp16_to_fp32(w16[size_t(r * k + i)])) * xf[size_t(c * k + i)];
                mag += std::fabs(double(fp16_to_fp32(w16[size_t(r * k + i)])) * xf[size_t(c * k + i)]);
            }
            CHECK(std::fabs(out[size_t(r * nc + c)] - ref) <= 1e-5 * mag);  // float accumulation of 40 terms
        }
}

// ------------------------------------------------------------------------------------------------
// `tessera quantize`: the whole output file equals llama-quantize's (same tensor types by the same mix rules,
// same key and tensor order, same bytes), plus its fallbacks and errors.

namespace {

std::string temp_dir() {
    char tmpl[] = "/tmp/tessera_quant_XXXXXX";
    const char* d = mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

// The CLI and ../shared as this executable was configured with (tests/CMakeLists.txt defines both per test
// executable; testing.cpp's helpers are compiled without them).
std::string cli() { return TESSERA_CLI; }
std::string golden(const std::string& name) { return std::string(TESSERA_SHARED_DIR) + "/golden/" + name; }
bool cli_built() {
    const bool ok = access(cli().c_str(), X_OK) == 0;
    if (!ok) FAIL_CHECK("the tessera CLI is not built at " << cli());
    return ok;
}

}  // namespace

TEST_CASE("tessera quantize writes llama-quantize's files byte for byte") {
    if (!shared_ok() || !cli_built()) return;
    const std::string dir = temp_dir();
    const char* cases[][3] = {
        {"llama-gqa.gguf", "q8_0", "llama-gqa-q8_0.gguf"},
        {"llama-gqa.gguf", "Q4_0", "llama-gqa-q4_0.gguf"},
        {"llama-gqa.gguf", "Q4_K_M", "llama-gqa-q4_k_m.gguf"},
        {"gemma2.gguf", "q4_k_m", "gemma2-q4_k_m.gguf"},
        {"llama-gqa.gguf", "IQ4_NL", "extra/llama-gqa-iq4_nl.gguf"},
        {"llama-gqa.gguf", "iq4_xs", "extra/llama-gqa-iq4_xs.gguf"},
        {"extra/gpt-oss.gguf", "MXFP4_MOE", "extra/gpt-oss-mxfp4.gguf"},
    };
    for (auto& c : cases) {
        CAPTURE(c[2]);
        const std::string out = dir + "/out.gguf";
        std::string log;
        const int rc = testing::run_command(cli() + " quantize " + golden(c[0]) +
                                                " " + out + " " + c[1] + " --threads 2",
                                            &log);
        CAPTURE(log);
        REQUIRE(rc == 0);
        CHECK(testing::read_file(out) == testing::read_file(golden(c[2])));
        std::remove(out.c_str());
    }
    rmdir(dir.c_str());
}

TEST_CASE("tessera quantize: row-length fallback, kept tensors, file type") {
    if (!shared_ok() || !cli_built()) return;
    const std::string dir = temp_dir(), out = dir + "/gemma-q4km.gguf";
    // gemma.gguf has n_embd 64: rows of 64 cannot hold a 256-value K-quant block.
    REQUIRE(testing::run_command(cli() + " quantize " + golden("gemma.gguf") + " " +
                                 out + " Q4_K_M") == 0);
    auto in = GGUFFile::open(golden("gemma.gguf"));
    auto f = GGUFFile::open(out);
    CHECK(f->get<uint32_t>("general.file_type") == 15);
    CHECK(f->get<uint32_t>("general.quantization_version") == 2);
    CHECK(f->find_tensor("output_norm.weight")->type == DType::F32);             // 1-D: unchanged
    CHECK(f->find_tensor("blk.0.attn_q.weight")->type == DType::Q5_0);           // Q4_K -> Q5_0 (rows of 64)
    CHECK(f->find_tensor("token_embd.weight")->type == DType::Q8_0);             // tied output: Q6_K -> Q8_0
    CHECK(f->find_tensor("blk.0.attn_output.weight")->type == DType::Q4_K);      // rows of 256: no fallback
    CHECK(f->find_tensor("blk.1.attn_v.weight")->type == DType::Q8_0);           // last layer: Q6_K -> Q8_0
    CHECK(f->keys().size() == in->keys().size() + (in->has("general.quantization_version") ? 0 : 1) +
                                  (in->has("general.file_type") ? 0 : 1));
    // Dequantized weights stay close to the originals (Q5_0: step = max / 16 per 32 values).
    const auto* a = in->find_tensor("blk.0.attn_q.weight");
    const auto* b = f->find_tensor("blk.0.attn_q.weight");
    const auto orig = dequantize(a->type, a->data, a->n_elements());
    const auto back = dequantize(b->type, b->data, b->n_elements());
    CHECK(testing::rel_rms(back, orig) < 0.05);
    std::remove(out.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("tessera quantize: clear errors") {
    if (!shared_ok() || !cli_built()) return;
    const std::string q = cli() + " quantize ";
    const std::string in = golden("gemma.gguf");
    std::string log;
    CHECK(testing::run_command(q + in + " /tmp/x.gguf Q9_9", &log) == 2);
    CHECK(log.find("unknown quantization type 'Q9_9'") != std::string::npos);
    CHECK(testing::run_command(q + "/nonexistent/in.gguf /tmp/x.gguf Q4_0", &log) == 1);
    CHECK(log.find("/nonexistent/in.gguf") != std::string::npos);
    CHECK(testing::run_command(q + in + " /nonexistent-dir/out.gguf Q4_0", &log) == 1);
    CHECK(log.find("not writable") != std::string::npos);
}
