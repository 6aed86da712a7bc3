// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS weights in the interleaved-rows layout (rows8_k_layout.h) x Q8_K activation rows.
// (IQ4_XS's grid and signed scales: see iq4_xs_sub_block.)
//
// Per strip (8 weight rows) and super-block, each 32 values' quants unpack into eight vectors u_g (g < 8),
// lane n holding row n's values 4g .. 4g + 3 as unsigned bytes (Q2_K 0..3, Q3_K 0..7, Q4_K 0..15, Q5_K 0..31, Q6_K 0..63). For each activation
// column x's four values are broadcast to every lane, and vpmaddubsw + vpmaddwd give row n's dot in lane n:
// the eight rows' sums are one vector in row order. Exactly the integers of the K-quant formulas:
//   Q4_K, Q5_K: dot_n = d_n dx sum_s sc_ns (q . x)_s  -  dmin_n dx sum_s m_ns bsum_s   (8 sub-blocks of 32)
//   Q6_K: dot_n = d_n dx (sum_s sc_ns (q . x)_s  -  32 sum_s sc_ns bsum_s)        (16 sub-blocks of 16, q = v + 32)
//   Q3_K: the same with q = v + 4 and 4 sum_s sc_ns bsum_s (its 6-bit scales less 32 as Q6_K's int8 ones)
//   Q2_K: dot_n = d_n dx sum_s sc_ns (q . x)_s  -  dmin_n dx sum_s m_ns bsum_s      (16 sub-blocks of 16)
// where bsum_s is the sum of x over sub-block s (Q8_K's bsums: per 16 values). The sub-block scale
// multiplies the u8 x s8 pair sums in int16 (vpmaddwd with (sc, sc) in each row's lane), so each integer sum
// is one int32 per row and super-block, turned into a float and scaled once per super-block for 8 rows.
//
// int16 bounds (no VNNI: the pair sums are added in int16 before widening; Q8_K values are within +-127):
//   Q4_K: eight pair sums of 32 values, each |.| <= 2 x 15 x 127 = 3810: 30480 < 32768.
//   Q5_K: pair sums |.| <= 2 x 31 x 127 = 7874, so four are added (31496) before vpmaddwd widens them.
//   Q6_K: pair sums |.| <= 2 x 63 x 127 = 16002, so only two are added (32004) before vpmaddwd widens them;
//   Q3_K and Q2_K go the same way, far inside (two pair sums of values up to 7: 3556).
// int32: Q4_K 8 x 2 x 30480 x 63 = 30.7M; Q5_K 8 x 32 x 31 x 127 x 63 = 63.5M; Q6_K 16 x 128 x 16 x 63 x 127 = 262M (+ 32 x 4.2M);
// Q3_K 16 x 32 x 16 x 7 x 127 = 7.3M (+ 4 x 4.2M); Q2_K 16 x 15 x 16 x 3 x 127 = 1.5M: all < 2^31.
//
// The scales and mins of eight rows come out of the record with a few vector ands and shifts (Q4_K's and Q5_K's
// 6-bit packing, rows8_k_layout.h) and one byte shuffle per sub-block puts (sc, sc) into each row's lane.
#include "backends/cpu/rows8_k_matmul.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "backends/cpu/decode_runs.h"
#include "backends/cpu/quant_dot_kernels.h"
#include "backends/cpu/rows8_k_layout.h"
#include "core/error.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

#if TESSERA_QDOT_AVX2

namespace {

namespace L = rows8_k_layout;
using namespace qdot;

constexpr int kPassCols = 8;  // activation columns per pass over a strip: a decode batch of up to 8 sequences unpacks each super-block once

inline __m256i bcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// vpshufb masks that make, in each 32-bit lane, the two int16 [byte a of the lane, byte b of the lane]:
// zero-extended (the byte in the low half of each int16), or in the high half, for an arithmetic shift
// right by 8 to sign-extend (Q6_K's int8 scales).
struct ByteShuffle {
    alignas(32) int8_t v[32];
};
constexpr ByteShuffle lane_pair(int a, int b, bool high) {
    ByteShuffle t{};
    for (int i = 0; i < 32; ++i) {
        const int lane = (i % 16) / 4, pos = i % 4;  // vpshufb indexes within each 128-bit half
        const bool data = high ? pos % 2 == 1 : pos % 2 == 0;
        t.v[i] = data ? int8_t(4 * lane + (pos < 2 ? a : b)) : int8_t(-128);  // -128: a zero byte
    }
    return t;
}
constexpr ByteShuffle kSame[4] = {lane_pair(0, 0, false), lane_pair(1, 1, false), lane_pair(2, 2, false),
                                  lane_pair(3, 3, false)};
constexpr ByteShuffle kNext[2] = {lane_pair(0, 1, false), lane_pair(2, 3, false)};
constexpr ByteShuffle kSameHi[4] = {lane_pair(0, 0, true), lane_pair(1, 1, true), lane_pair(2, 2, true),
                                    lane_pair(3, 3, true)};
constexpr ByteShuffle kNextHi[2] = {lane_pair(0, 1, true), lane_pair(2, 3, true)};

inline __m256i shuffle(__m256i v, const ByteShuffle& m) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(m.v)));
}
inline __m256i shuffle_signed(__m256i v, const ByteShuffle& m) { return _mm256_srai_epi16(shuffle(v, m), 8); }

inline __m256 load_f16x8(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// acc + d dx isum - dmin dx mins: one column's eight rows of a super-block whose values carry a min (Q4_K,
// Q5_K, Q2_K).
inline __m256 add_less_mins(__m256 acc, __m256i isum, __m256i mins, __m256 d, __m256 dmin, __m256 dx) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, dx), acc);
    return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_mul_ps(dmin, dx), acc);
}

// Per super-block b and column c < C (entry b * C + c): d_x, and for Q4_K, Q5_K and IQ4_XS the eight 32-value sums of x
// (bs8[8 (b * C + c) + s]: |.| <= 32 x 127, an int16).
void column_terms(DType t, int64_t nblocks, const char* a, size_t a_stride, int C, float* dx, int16_t* bs8) {
    for (int c = 0; c < C; ++c) {
        const auto* x = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride);
        for (int64_t b = 0; b < nblocks; ++b) {
            dx[b * C + c] = x[b].d;
            if (t == DType::Q4_K || t == DType::Q5_K || t == DType::IQ4_XS)  // (the others use the bsums per 16 as they are)
                for (int s = 0; s < 8; ++s)
                    bs8[8 * (b * C + c) + s] = int16_t(x[b].bsums[2 * s] + x[b].bsums[2 * s + 1]);
        }
    }
}

template <int C>
void store_strip(const __m256 (&acc)[C], float* out, size_t out_stride, int rows) {
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        if (rows == L::kStripRows) {
            _mm256_storeu_ps(out + size_t(c) * out_stride, acc[c]);
        } else {
            alignas(32) float v[8];
            _mm256_store_ps(v, acc[c]);
            std::memcpy(out + size_t(c) * out_stride, v, size_t(rows) * sizeof(float));
        }
    }
}

// Decode reads each weight once, and one core's hardware prefetch alone keeps too few lines in flight: the
// record kPrefetchRecords ahead in the strip is asked for into L2, an eighth of it per sub-block (or Q6_K
// quarter) so that the requests trickle out with the arithmetic rather than stall the core in a burst (tg32
// Q4_K_M, TinyLlama-1.1B shape, 2 threads, Xeon at the avx2 level: none 32.0-32.7 tok/s; 2 ahead 36.6-37.1,
// 4 ahead 39.2-40.5, 8 ahead 38.6-39.4; into L1 34.6-35.9; avx512 32.1-32.4 -> 40.0-40.3).
// Four strips read side by side (Q4_K decode, strips_four_q4_K) ask for one record ahead each: about as far
// ahead in all.
constexpr int kPrefetchRecords = 4;
template <size_t kRec, int kAhead>
[[gnu::always_inline]] inline void ask_ahead_eighth(const uint8_t* record, int i) {
    prefetch_part(record, kRec, i, 8, size_t(kAhead) * kRec, PrefetchInto::L2);
}

// Q4_K and Q5_K records share their head (d, dmin, the 6-bit scales and mins) and their arithmetic; Q5_K's
// values have a fifth bit, in qh (bit s of chunk g's bytes for values 4g .. 4g + 3 of sub-block s).
template <DType T>
struct NibbleRecord;
template <>
struct NibbleRecord<DType::Q4_K> {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_q4_K), kQs = L::kQ4KQs;
    static constexpr bool kFifthBit = false;
};
template <>
struct NibbleRecord<DType::Q5_K> {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_q5_K), kQs = L::kQ5KQs, kQh = L::kQ5KQh;
    static constexpr bool kFifthBit = true;
};

// Bit `from` of each byte of h moved to bit `to`, the other bits 0 (Q5_K's fifth bit: to 4; Q3_K's third: to 2).
template <int from, int to>
inline __m256i move_bit(__m256i h) {
    const __m256i bit = _mm256_set1_epi8(char(1 << to));
    if constexpr (from < to) return _mm256_and_si256(_mm256_slli_epi16(h, to - from), bit);
    if constexpr (from == to) return _mm256_and_si256(h, bit);
    return _mm256_and_si256(_mm256_srli_epi16(h, from - to), bit);
}

// Bits 2j, 2j + 1 of each byte of v as a value 0..3 (Q2_K's and Q3_K's low bits).
template <int j>
inline __m256i bit_pair(__m256i v) {
    return _mm256_and_si256(j ? _mm256_srli_epi16(v, 2 * j) : v, _mm256_set1_epi8(0x03));
}

// Sub-block s (values 32s .. 32s + 31) of a Q4_K / Q5_K record at r, scale pair sp, into the C columns' sums.
template <DType T, int C, int kAhead, int s>
[[gnu::always_inline]] inline void nibble_sub_block(const uint8_t* r, __m256i sp, const block_q8_K* const (&xb)[C],
                                                    int64_t b, __m256i (&isum)[C]) {
    using R = NibbleRecord<T>;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    ask_ahead_eighth<R::kRec, kAhead>(r, s);
    const uint8_t* chunk = r + R::kQs + 256 * (s / 2);  // low nibbles: even s, high: odd s
    // With VNNI (VPDPBUSD sums into int32 without saturating) Q4_K's high nibbles are taken in place (byte &
    // 0xF0: 16 times the value) and their dot shifted back once per column, instead of a shift per vector.
    constexpr bool kInPlace = kVnni && s % 2 == 1 && !R::kFifthBit;
    __m256i u[8];
    TESSERA_UNROLL for (int g = 0; g < 8; ++g) {
        const __m256i v = loadu256(chunk + 32 * g);
        if constexpr (kInPlace) u[g] = _mm256_and_si256(v, _mm256_set1_epi8(char(0xF0)));
        else u[g] = _mm256_and_si256(s % 2 ? _mm256_srli_epi16(v, 4) : v, low4);
        if constexpr (R::kFifthBit) u[g] = _mm256_or_si256(u[g], move_bit<s, 4>(loadu256(r + R::kQh + 32 * g)));
    }
#if TESSERA_QDOT_VNNI
    // The scale multiplies the int32 dot (sp's low int16 alone: (sc, sc) -> sc).
    const __m256i sc32 = _mm256_and_si256(sp, _mm256_set1_epi32(0xFFFF));
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        __m256i dot = dot_rows8_vnni(u, xb[c][b].qs + 32 * s, _mm256_setzero_si256());
        if constexpr (kInPlace) dot = _mm256_srai_epi32(dot, 4);
        isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(dot, sc32));
    }
#else
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const int8_t* x = xb[c][b].qs + 32 * s;
        if constexpr (R::kFifthBit) {  // values up to 31: four pair sums at a time fit in int16
            __m256i p0 = _mm256_maddubs_epi16(u[0], bcast4(x)), p1 = _mm256_maddubs_epi16(u[4], bcast4(x + 16));
            TESSERA_UNROLL for (int g = 1; g < 4; ++g) {
                p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(u[g], bcast4(x + 4 * g)));
                p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(u[g + 4], bcast4(x + 16 + 4 * g)));
            }
            isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(p0, sp), _mm256_madd_epi16(p1, sp)));
        } else {
            __m256i p = _mm256_maddubs_epi16(u[0], bcast4(x));
            TESSERA_UNROLL for (int g = 1; g < 8; ++g) p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[g], bcast4(x + 4 * g)));
            isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sp));
        }
    }
#endif
}

template <DType T, int C, int kAhead, int... s>
[[gnu::always_inline]] inline void nibble_sub_blocks(const uint8_t* r, __m256i sc03, __m256i sc47,
                                                     const block_q8_K* const (&xb)[C], int64_t b, __m256i (&isum)[C],
                                                     std::integer_sequence<int, s...>) {
    (nibble_sub_block<T, C, kAhead, s>(r, shuffle(s < 4 ? sc03 : sc47, kSame[s % 4]), xb, b, isum), ...);
}

// Super-block b of a Q4_K or Q5_K strip (its record at r) x C activation columns: column c's eight dots added
// to acc[c]. The record kAhead further along the strip is asked for as it goes.
template <DType T, int C, int kAhead>
[[gnu::always_inline]] inline void nibble_record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                                 const float* dx, const int16_t* bs8, __m256 (&acc)[C]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), low6 = _mm256_set1_epi8(0x3F), bits45 = _mm256_set1_epi8(0x30);
    // The 12 scale bytes as three words w0 w1 w2 (row n in lane n): scales 0-3 and mins 0-3 are the low
    // 6 bits of w0 and w1; scales 4-7 (mins 4-7) are w2's low (high) nibbles, topped by the top 2 bits
    // of w0's (w1's) bytes.
    const __m256i w0 = loadu256(r + L::kQ4KScales), w1 = loadu256(r + L::kQ4KScales + 32),
                  w2 = loadu256(r + L::kQ4KScales + 64);
    const __m256i sc03 = _mm256_and_si256(w0, low6), m03 = _mm256_and_si256(w1, low6);
    const __m256i sc47 = _mm256_or_si256(_mm256_and_si256(w2, low4), _mm256_and_si256(_mm256_srli_epi32(w0, 2), bits45));
    const __m256i m47 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), low4),
                                        _mm256_and_si256(_mm256_srli_epi32(w1, 2), bits45));
    __m256i isum[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
    nibble_sub_blocks<T, C, kAhead>(r, sc03, sc47, xb, b, isum, std::make_integer_sequence<int, 8>{});
    const __m256i mp0 = shuffle(m03, kNext[0]), mp1 = shuffle(m03, kNext[1]), mp2 = shuffle(m47, kNext[0]),
                  mp3 = shuffle(m47, kNext[1]);
    const __m256 d = load_f16x8(r), dmin = load_f16x8(r + L::kQ4KDmin);
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const int16_t* bs = bs8 + 8 * (b * C + c);
        __m256i ms = _mm256_madd_epi16(mp0, bcast4(bs));
        ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp1, bcast4(bs + 2)));
        ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp2, bcast4(bs + 4)));
        ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp3, bcast4(bs + 6)));
        acc[c] = add_less_mins(acc[c], isum[c], ms, d, dmin, _mm256_set1_ps(dx[b * C + c]));
    }
}

// What strip<R, C> needs of a record kind: its bytes, and its super-block kernel (nibble_record, ...).
template <DType T>
struct NibbleRecords {
    static constexpr size_t kRec = NibbleRecord<T>::kRec;
    template <int C, int kAhead>
    [[gnu::always_inline]] static void record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                              const float* dx, const int16_t* bs8, __m256 (&acc)[C]) {
        nibble_record<T, C, kAhead>(r, xb, b, dx, bs8, acc);
    }
};

// One strip (8 weight rows, `rows` of them real) of record kind R x C activation columns over nblocks
// super-blocks; column c's eight results go to out + c * out_stride.
template <class R, int C>
void strip(int64_t nblocks, const uint8_t* strip, const char* a, size_t a_stride, const float* dx,
           const int16_t* bs8, float* out, size_t out_stride, int rows) {
    const block_q8_K* xb[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) xb[c] = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride);
    __m256 acc[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblocks; ++b) R::template record<C, kPrefetchRecords>(strip + size_t(b) * R::kRec, xb, b, dx, bs8, acc);
    store_strip<C>(acc, out, out_stride, rows);
}

// Q6_K, Q3_K and Q2_K records: 16 sub-blocks of 16 values, each with a signed scale (Q6_K int8, Q3_K 6 bits - 32)
// and unsigned values u (Q6_K 0..63, Q3_K 0..7) a constant offset above the quants (32, 4), which comes off
// once per super-block through Q8_K's bsums (per 16 values):
//   dot_n = d_n dx (sum_s sc_ns (u . x)_s  -  offset sum_s sc_ns bsum_s)
// or (Q2_K) an unsigned 4-bit scale and min each, the mins' term taken off the same way (see below).
// What differs is where the bits lie: SixteensRecord<T> unpacks quarter q (values 32q .. 32q + 31) into
// u[g] (lane n: row n's values 4g .. 4g + 3 of the quarter) and the scales into sc[i] (lane n: row n's
// four int8 scales 4i .. 4i + 3).
template <DType T>
struct SixteensRecord;

// The high two bits of quarter t's values (qh bits 2t, 2t + 1) moved to bits 4-5 of each byte.
template <int t>
inline __m256i q6_high(__m256i h, __m256i bits45) {
    if constexpr (t == 0) return _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45);
    if constexpr (t == 1) return _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45);
    if constexpr (t == 2) return _mm256_and_si256(h, bits45);
    return _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45);
}

template <>
struct SixteensRecord<DType::Q6_K> {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_q6_K);
    static constexpr bool kMins = false;
    static constexpr int kOffsetShift = 5;  // offset 32
    static void scales(const uint8_t* r, __m256i (&sc)[4]) {
        TESSERA_UNROLL for (int i = 0; i < 4; ++i) sc[i] = loadu256(r + L::kQ6KScales + 32 * i);
    }
    // Quarter q is quarter t = q % 4 of half h = q / 4: ql's low nibbles for t 0, 1, high for 2, 3.
    template <int q>
    [[gnu::always_inline]] static void unpack(const uint8_t* r, __m256i (&u)[8]) {
        constexpr int h = q / 4, t = q % 4;
        const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
        const uint8_t* ql = r + L::kQ6KQl + 256 * (2 * h + (t & 1));
        const uint8_t* qh = r + L::kQ6KQh + 256 * h;
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) {
            const __m256i l = loadu256(ql + 32 * g);
            u[g] = _mm256_or_si256(_mm256_and_si256(t >= 2 ? _mm256_srli_epi16(l, 4) : l, low4),
                                   q6_high<t>(loadu256(qh + 32 * g), bits45));
        }
    }
};

template <>
struct SixteensRecord<DType::Q3_K> {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_q3_K);
    static constexpr bool kMins = false;
    static constexpr int kOffsetShift = 2;  // offset 4
    // The 12 scale bytes as three words w0 w1 w2 (row n in lane n), q3_scale's packing for eight rows at once:
    // scale j's low nibble is nibble j / 8 of byte j % 8 (w0 for j % 8 < 4, else w1), its top two bits are
    // bits 2 (j / 4), 2 (j / 4) + 1 of byte j % 4 of w2.
    static void scales(const uint8_t* r, __m256i (&sc)[4]) {
        const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03), bias = _mm256_set1_epi8(32);
        const __m256i w0 = loadu256(r + L::kQ3KScales), w1 = loadu256(r + L::kQ3KScales + 32),
                      w2 = loadu256(r + L::kQ3KScales + 64);
        const auto top = [&](int i) { return _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w2, 2 * i), low2), 4); };
        sc[0] = _mm256_or_si256(_mm256_and_si256(w0, low4), top(0));
        sc[1] = _mm256_or_si256(_mm256_and_si256(w1, low4), top(1));
        sc[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w0, 4), low4), top(2));
        sc[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w1, 4), low4), top(3));
        TESSERA_UNROLL for (int i = 0; i < 4; ++i) sc[i] = _mm256_sub_epi8(sc[i], bias);  // 0..63 -> -32..31
    }
    // Quarter q is j = q % 4 of half h = q / 4: bits 2j, 2j + 1 of the half's qs bytes, bit 4h + j of hmask.
    template <int q>
    [[gnu::always_inline]] static void unpack(const uint8_t* r, __m256i (&u)[8]) {
        constexpr int h = q / 4, j = q % 4;
        const uint8_t* qs = r + L::kQ3KQs + 256 * h;
        TESSERA_UNROLL for (int g = 0; g < 8; ++g)
            u[g] = _mm256_or_si256(bit_pair<j>(loadu256(qs + 32 * g)), move_bit<4 * h + j, 2>(loadu256(r + L::kQ3KHmask + 32 * g)));
    }
};

// Q2_K: values 0..3 (Q3_K's low bits, in the same order), each 16 with an unsigned 4-bit scale and min:
//   dot_n = d_n dx sum_s sc_ns (u . x)_s  -  dmin_n dx sum_s m_ns bsum_s
template <>
struct SixteensRecord<DType::Q2_K> {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_q2_K);
    static constexpr bool kMins = true;
    static constexpr int kOffsetShift = 0;  // no constant offset: the mins' term instead
    static constexpr size_t kDmin = L::kQ2KDmin;
    static void scales(const uint8_t* r, __m256i (&sc)[4]) {
        TESSERA_UNROLL for (int i = 0; i < 4; ++i) sc[i] = _mm256_and_si256(loadu256(r + L::kQ2KScales + 32 * i), _mm256_set1_epi8(0x0F));
    }
    static void mins(const uint8_t* r, __m256i (&m)[4]) {
        TESSERA_UNROLL for (int i = 0; i < 4; ++i)
            m[i] = _mm256_and_si256(_mm256_srli_epi16(loadu256(r + L::kQ2KScales + 32 * i), 4), _mm256_set1_epi8(0x0F));
    }
    template <int q>
    [[gnu::always_inline]] static void unpack(const uint8_t* r, __m256i (&u)[8]) {
        const uint8_t* qs = r + L::kQ2KQs + 256 * (q / 4);
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) u[g] = bit_pair<q % 4>(loadu256(qs + 32 * g));
    }
};

// Quarter q (values 32q .. 32q + 31), sub-blocks 2q and 2q + 1, of a Q6_K, Q3_K or Q2_K record into the C columns' sums.
template <DType T, int C, int q, int kAhead>
inline void sixteens_quarter(const uint8_t* r, const __m256i (&sc)[4], const block_q8_K* const (&xb)[C],
                                                    int64_t b, __m256i (&isum)[C]) {
    using R = SixteensRecord<T>;
    ask_ahead_eighth<R::kRec, kAhead>(r, q);
    const __m256i sp0 = shuffle_signed(sc[q / 2], kSameHi[(2 * q) % 4]);
    const __m256i sp1 = shuffle_signed(sc[q / 2], kSameHi[(2 * q) % 4 + 1]);
    __m256i u[8];
    R::template unpack<q>(r, u);
#if TESSERA_QDOT_VNNI
    // Each 16-value sub-block's dot in int32 (VPDPBUSD), times its scale as an int32 (the high int16 of
    // (sc, sc), sign-extended): the same integers with fewer instructions than the int16 pairs below.
    const __m256i sc0 = _mm256_srai_epi32(sp0, 16), sc1 = _mm256_srai_epi32(sp1, 16);
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        __m256i d0 = _mm256_setzero_si256(), d1 = _mm256_setzero_si256();
        dot_rows8_vnni(u, xb[c][b].qs + 32 * q, d0, d1);
        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_mullo_epi32(d0, sc0), _mm256_mullo_epi32(d1, sc1)));
    }
#else
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const int8_t* x = xb[c][b].qs + 32 * q;
        __m256i p[4];
        TESSERA_UNROLL for (int i = 0; i < 4; ++i)
            p[i] = _mm256_add_epi16(_mm256_maddubs_epi16(u[2 * i], bcast4(x + 8 * i)),
                                    _mm256_maddubs_epi16(u[2 * i + 1], bcast4(x + 8 * i + 4)));
        const __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(p[0], sp0), _mm256_madd_epi16(p[1], sp0));
        const __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(p[2], sp1), _mm256_madd_epi16(p[3], sp1));
        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(lo, hi));
    }
#endif
}

template <DType T, int C, int kAhead, int... q>
inline void sixteens_quarters(const uint8_t* r, const __m256i (&sc)[4], const block_q8_K* const (&xb)[C],
                                                     int64_t b, __m256i (&isum)[C], std::integer_sequence<int, q...>) {
    (sixteens_quarter<T, C, q, kAhead>(r, sc, xb, b, isum), ...);
}

// Super-block b of a Q6_K, Q3_K or Q2_K strip x C activation columns, as nibble_record.
template <DType T, int C, int kAhead>
[[gnu::always_inline]] inline void sixteens_record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                                   const float* dx, __m256 (&acc)[C]) {
    using R = SixteensRecord<T>;
    __m256i sc[4];  // sc[i] lane n: row n's int8 scales 4i .. 4i + 3
    R::scales(r, sc);
    __m256i isum[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
    sixteens_quarters<T, C, kAhead>(r, sc, xb, b, isum, std::make_integer_sequence<int, 8>{});
    // The offset: sum_s f_s bsum_s, two sub-blocks per vpmaddwd, with f the scales (Q6_K, Q3_K: then times
    // the constant offset, 32 or 4) or Q2_K's mins (then times dmin).
    __m256i f[4];
    if constexpr (R::kMins) R::mins(r, f);
    else TESSERA_UNROLL for (int i = 0; i < 4; ++i) f[i] = sc[i];
    __m256i sp[8];
    TESSERA_UNROLL for (int i = 0; i < 8; ++i) sp[i] = shuffle_signed(f[i / 2], kNextHi[i % 2]);
    const __m256 d = load_f16x8(r);
    __m256 dmin = _mm256_setzero_ps();
    if constexpr (R::kMins) dmin = load_f16x8(r + R::kDmin);
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const int16_t* bs = xb[c][b].bsums;
        __m256i os = _mm256_madd_epi16(sp[0], bcast4(bs));
        TESSERA_UNROLL for (int i = 1; i < 8; ++i) os = _mm256_add_epi32(os, _mm256_madd_epi16(sp[i], bcast4(bs + 2 * i)));
        const __m256 dx_c = _mm256_set1_ps(dx[b * C + c]);
        if constexpr (R::kMins) {
            acc[c] = add_less_mins(acc[c], isum[c], os, d, dmin, dx_c);
        } else {
            const __m256i total = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(os, R::kOffsetShift));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, dx_c), acc[c]);
        }
    }
}

template <DType T>
struct SixteensRecords {
    static constexpr size_t kRec = SixteensRecord<T>::kRec;
    template <int C, int kAhead>
    [[gnu::always_inline]] static void record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                              const float* dx, const int16_t*, __m256 (&acc)[C]) {
        sixteens_record<T, C, kAhead>(r, xb, b, dx, acc);
    }
};

// IQ4_XS: each nibble indexes kIQ4Grid (int8, -127 .. 113), and sub-block g of 32 values has the signed 6-bit
// scale ls_g - 32, ls_g = nibble g of scales_l | bits 2g, 2g + 1 of scales_h << 4, under the block's d:
//   dot_n = d_n dx sum_g (ls_ng - 32) (w . x)_g
// With VNNI the grid is looked up as unsigned bytes (level + 128; VPDPBUSD sums in int32, so no pair
// saturates) and 128 bsum_g comes off each sub-block's dot. Without, |w| times x with w's sign moved onto x,
// as Q8_0's rows8 kernel does: a pair is at most 2 x 127 x 127 = 32258, so each vector's pairs are widened
// (and scaled) by vpmaddwd on their own. int32: 8 sub-blocks x 32 x 127 x 127 x 32 = 132M < 2^31 (VNNI: the
// unsigned dot, at most 32 x 241 x 127, before its offset comes off).
template <int C, int kAhead, int g>
[[gnu::always_inline]] inline void iq4_xs_sub_block(const uint8_t* r, __m256i wl, __m256i sh, __m256i grid,
                                                    const block_q8_K* const (&xb)[C], int64_t b, const int16_t* bs8,
                                                    __m256i (&isum)[C]) {
    constexpr size_t kRec = L::kStripRows * sizeof(block_iq4_xs);
    ask_ahead_eighth<kRec, kAhead>(r, g);
    const __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(wl, 4 * g), _mm256_set1_epi32(0xF)),
                                       _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(sh, 2 * g), _mm256_set1_epi32(3)), 4));
    const __m256i sc = _mm256_sub_epi32(ls, _mm256_set1_epi32(32));  // lane n: row n's scale, -32 .. 31
    __m256i u[8];  // u[m]: values 4m .. 4m + 3 of the sub-block; u[m + 4]: values 16 + 4m ..
    grid_rows8(r + L::kIQ4XSQs + 128 * g, grid, u);
#if TESSERA_QDOT_VNNI
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const __m256i dot = dot_rows8_vnni(u, xb[c][b].qs + 32 * g, _mm256_set1_epi32(-128 * int32_t(bs8[8 * (b * C + c) + g])));
        isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(dot, sc));
    }
#else
    (void)bs8;
    const __m256i sp = _mm256_or_si256(_mm256_and_si256(sc, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(sc, 16));  // (sc, sc)
    TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        const int8_t* x = xb[c][b].qs + 32 * g;
        TESSERA_UNROLL for (int j = 0; j < 8; ++j) isum[c] = _mm256_add_epi32(isum[c], signed_rows8_dot4(u[j], bcast4(x + 4 * j), sp));
    }
#endif
}

template <int C, int kAhead, int... g>
[[gnu::always_inline]] inline void iq4_xs_sub_blocks(const uint8_t* r, __m256i wl, __m256i sh, __m256i grid,
                                                     const block_q8_K* const (&xb)[C], int64_t b, const int16_t* bs8,
                                                     __m256i (&isum)[C], std::integer_sequence<int, g...>) {
    (iq4_xs_sub_block<C, kAhead, g>(r, wl, sh, grid, xb, b, bs8, isum), ...);
}

// Super-block b of an IQ4_XS strip x C activation columns, as nibble_record.
template <int C, int kAhead>
[[gnu::always_inline]] inline void iq4_xs_record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                                 const float* dx, const int16_t* bs8, __m256 (&acc)[C]) {
    // The levels as VPSHUFB looks them up (VNNI: + 128, as unsigned bytes).
    static constexpr ByteTable kGrid = offset_grid(kIQ4Grid, kVnni ? 128 : 0);
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kGrid.v)));
    const __m256i wl = loadu256(r + L::kIQ4XSScalesL);
    const __m256i sh = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + L::kIQ4XSScalesH)));
    __m256i isum[C];
    TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
    iq4_xs_sub_blocks<C, kAhead>(r, wl, sh, grid, xb, b, bs8, isum, std::make_integer_sequence<int, 8>{});
    const __m256 d = load_f16x8(r);
    TESSERA_UNROLL for (int c = 0; c < C; ++c)
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(d, _mm256_set1_ps(dx[b * C + c])), acc[c]);
}

struct IQ4XSRecords {
    static constexpr size_t kRec = L::kStripRows * sizeof(block_iq4_xs);
    template <int C, int kAhead>
    [[gnu::always_inline]] static void record(const uint8_t* r, const block_q8_K* const (&xb)[C], int64_t b,
                                              const float* dx, const int16_t* bs8, __m256 (&acc)[C]) {
        iq4_xs_record<C, kAhead>(r, xb, b, dx, bs8, acc);
    }
};

// Decode of one sequence on Q4_K: one activation column against four full strips side by side (strip s at
// strip0 + s * strip_stride, its eight results at out + s * out_step), each a record at a time in turn: four
// streams in flight, taken from runs far apart (decode_runs.h). The integers and float steps are
// strip<NibbleRecords<Q4_K>, 1>'s, so the bits are too.
// Q6_K decodes a strip at a time (strip<SixteensRecords<Q6_K>, 1>), and so does Q3_K: its record keeps more in registers (four scale vectors,
// eight unpacked quarters), and four records side by side spilled them to the stack, which cost more than
// the streams gained (bench matmul -n 8192 -m 1, q6_K, AMD EPYC Zen 4, alternated: 1 thread 15.0-15.7 GB/s
// four side by side, 21.0-22.2 one strip; avx2 level 15.8-16.0 vs 23.3-26.0). Q4_K keeps the four (1
// thread 25.5-28.4 vs 22.4-24.8 GB/s). Q5_K, whose sub-blocks also unpack qh, reads a strip at a time too (1
// thread 18.5 GB/s four side by side, 24.1-24.7 one strip, same machine).
void strips_four_q4_K(int64_t nblocks, const uint8_t* strip0, size_t strip_stride, const char* a, const float* dx,
                      const int16_t* bs8, float* out, size_t out_step) {
    constexpr size_t kRec = NibbleRecord<DType::Q4_K>::kRec;
    const block_q8_K* const xb[1] = {reinterpret_cast<const block_q8_K*>(a)};
    __m256 acc[4][1];
    TESSERA_UNROLL for (int s = 0; s < 4; ++s) acc[s][0] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblocks; ++b)
        TESSERA_UNROLL for (int s = 0; s < 4; ++s)
            nibble_record<DType::Q4_K, 1, 1>(strip0 + size_t(s) * strip_stride + size_t(b) * kRec, xb, b, dx, bs8, acc[s]);
    TESSERA_UNROLL for (int s = 0; s < 4; ++s) _mm256_storeu_ps(out + size_t(s) * out_step, acc[s][0]);
}

using StripFn = void (*)(int64_t, const uint8_t*, const char*, size_t, const float*, const int16_t*, float*, size_t, int);

template <int C>
StripFn strip_fn_for(DType t) {
    if (t == DType::Q4_K) return strip<NibbleRecords<DType::Q4_K>, C>;
    if (t == DType::Q5_K) return strip<NibbleRecords<DType::Q5_K>, C>;
    if (t == DType::IQ4_XS) return strip<IQ4XSRecords, C>;
    if (t == DType::Q3_K) return strip<SixteensRecords<DType::Q3_K>, C>;
    if (t == DType::Q2_K) return strip<SixteensRecords<DType::Q2_K>, C>;
    return strip<SixteensRecords<DType::Q6_K>, C>;
}

StripFn strip_fn(DType t, int C) {
    static_assert(kPassCols == 8, "strip_fn: extend the switch");
    switch (C) {
        case 1: return strip_fn_for<1>(t);
        case 2: return strip_fn_for<2>(t);
        case 3: return strip_fn_for<3>(t);
        case 4: return strip_fn_for<4>(t);
        case 5: return strip_fn_for<5>(t);
        case 6: return strip_fn_for<6>(t);
        case 7: return strip_fn_for<7>(t);
        default: return strip_fn_for<8>(t);
    }
}

}  // namespace

bool rows8_k_compiled(DType t) { return L::repackable(t); }

size_t rows8_k_scratch_floats(const MatmulJob& job) {
    // d_x (one float) and eight int16 sums (four floats' room) per super-block and column of a pass.
    return size_t(5 * (job.k / L::kBlockValues) * kPassCols + 16);
}

void rows8_k_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch) {
    TESSERA_CHECK(L::repackable(job.wtype) && r0 % L::kStripRows == 0, "rows8 K-quant matmul: %s weights, rows from %lld",
                  type_name(job.wtype), (long long)r0);
    const int64_t nb = job.k / L::kBlockValues;
    const size_t strip_bytes = size_t(nb) * L::record_bytes(job.wtype);
    const auto* w = reinterpret_cast<const uint8_t*>(job.w);
    float* dx = scratch;
    auto* bs8 = reinterpret_cast<int16_t*>(scratch + nb * kPassCols);
    for (int64_t j0 = 0; j0 < job.m; j0 += kPassCols) {
        const int C = int(std::min<int64_t>(kPassCols, job.m - j0));
        const char* a = qact + size_t(j0) * qstride;
        column_terms(job.wtype, nb, a, qstride, C, dx, bs8);
        const StripFn f = strip_fn(job.wtype, C);
        int64_t row = r0;
        if (C == 1 && job.wtype == DType::Q4_K) {  // the full strips four at a time from runs far apart
            float* out = job.out + j0 * int64_t(job.out_stride);
            row = r0 + L::kStripRows * decode_in_runs((r1 - r0) / L::kStripRows, 4, [&](int64_t i, int64_t run) {
                      const int64_t first = r0 + i * L::kStripRows;
                      strips_four_q4_K(nb, w + size_t(first / L::kStripRows) * strip_bytes, size_t(run) * strip_bytes,
                                       a, dx, bs8, out + first, size_t(run * L::kStripRows));
                  });
        }
        for (; row < r1; row += L::kStripRows)
            f(nb, w + size_t(row / L::kStripRows) * strip_bytes, a, qstride, dx, bs8,
              job.out + j0 * int64_t(job.out_stride) + row, job.out_stride,
              int(std::min<int64_t>(L::kStripRows, r1 - row)));
    }
}

#else  // no AVX2: the cpu backend does not make the layout at this level, and mul_mat_ok refuses it

bool rows8_k_compiled(DType) { return false; }
size_t rows8_k_scratch_floats(const MatmulJob&) { return 0; }
void rows8_k_panel(const MatmulJob&, int64_t, int64_t, const char*, size_t, float*) {
    TESSERA_CHECK(false, "rows8 K-quant matmul: this cpu level has no kernels for interleaved-rows weights");
}

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
