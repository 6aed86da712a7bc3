// The inner loops of the cpu attention (xsimd): converting cache rows into
// float tiles, the score block Q.K^T, the online-softmax step and the
// weighted accumulation of V rows. attention.cpp strings them together.
//
// All float buffers here are row-major with a padded row length that is a
// multiple of kLanes (the SIMD width), zero-filled past the logical length,
// so the loops never need a scalar tail over the head dimension.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::attn {

// Floats per SIMD register on the architecture this file was compiled for.
int64_t lanes();
// d rounded up to a multiple of lanes().
int64_t padded(int64_t d);

// Converts one row of n elements of type t (F32, F16 or Q8_0) to floats in dst[0, n) and zero-fills
// dst[n, n_padded).
void row_to_f32(DType t, const void* src, int64_t n, float* dst, int64_t n_padded);

// S[r * lds + j] = dot(Q row r, K row j) over dp floats, for r < m, j < n. dp is a multiple of lanes().
void scores(const float* q, int64_t ldq, int64_t m, const float* k, int64_t ldk, int64_t n, int64_t dp, float* s,
            int64_t lds);

// x -> cap * tanh(x / cap) for x[0, n).
void apply_softcap(float* x, int64_t n, float cap);

// One online-softmax step on a row of n scores (invisible ones already -inf). With the row's running
// max *m and sum *l: raises *m to cover the new scores, turns s into exp(s - m) in place, and returns the
// factor the row's earlier output and sum must be multiplied by (already applied to *l). A row whose
// scores are all -inf so far gets p = 0 everywhere and factor 1.
float softmax_step(float* s, int64_t n, float* m, float* l);

// o[0, dp) *= f
void scale_row(float* o, int64_t dp, float f);

// O[r * ldo + c] += sum_j P[r * ldp + j] * V[j * ldv + c] for r < m, j < n, c < dp (dp a multiple of lanes()).
void accumulate_pv(const float* p, int64_t ldp, int64_t m, const float* v, int64_t ldv, int64_t n, int64_t dp,
                   float* o, int64_t ldo);

// ---- streaming kernels: decode with few query rows per KV head (MHA, GQA) ----
// These read cache rows in place (f32, f16 or q8_0, converted in registers) in blocks of a few consecutive
// keys, all KV heads of a block before the next block, so the cache streams front to back; nothing is
// converted into a buffer, since with a handful of rows per head a converted tile would be used only once.
// Each chunk of a K or V row is converted once and used by all the rows of its head (the group's query
// heads): scores keep rows x keys dots in registers, P.V keeps rows x columns of output in registers over
// 8 keys. Rows ahead are prefetched into L2 while the arithmetic runs.
// Cache row of key j, KV head h: base + j * stride_j + h * stride_h. Row lengths are multiples of lanes().
// n_after: keys that exist from base on (>= nk); rows up to there may be prefetched.
// Query/output/score row r of head h is at index h * head_rows + r (r < rows, rows <= kMaxStreamRows).
constexpr int64_t kMaxStreamRows = 8;

// S[(h * head_rows + r) * lds + j] = dot(Q row (h * head_rows + r), K(j, h)) over d elements.
void stream_scores(DType t, const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads, int64_t d,
                   const float* q, int64_t ldq, int64_t rows, int64_t head_rows, float* s, int64_t lds);

// O row (h * head_rows + r) += sum_j P[(h * head_rows + r) * ldp + j] * V(j, h), over d elements.
void stream_pv(DType t, const char* base, size_t stride_j, size_t stride_h, int64_t nk, int64_t n_after, int64_t n_heads, int64_t d,
               const float* p, int64_t ldp, int64_t rows, int64_t head_rows, float* o, int64_t ldo);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::attn
