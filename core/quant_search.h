// The scale searches of the K-quant quantizers (core/quant_k.cpp), private to core/quant*.cpp.
//
// Each search has two forms that give the same bits. The single-group form states the algorithm (it is
// llama.cpp's reference search, and the oracle the tests hold the other form to). The batched form runs
// eight groups side by side, one per SIMD lane: every lane does exactly the single-group form's float
// operations in the same order (no sum is reordered, no multiply-add fused), and the choices one group's
// search makes ("keep this step if its error is lower") become per-lane selects. That is what makes
// `tessera quantize` several times faster without changing a byte.
#pragma once
#include <cstdint>

namespace tessera::quant_detail {

// The value of largest magnitude in x[0..n) (the first of equal magnitudes): where the symmetric searches
// (Q3_K's and Q6_K's) start.
struct SignedMax {
    float value = 0, magnitude = 0;
};
SignedMax signed_max(int n, const float* x);

// One symmetric fit: levels l = round(iscale * x) clamped to -nmax..nmax-1, with the sums a least-squares
// scale is made of, weighting each value by x^2: sumlx = sum(w x l), suml2 = sum(w l^2), added in index
// order. When L is given it receives l + offset.
void symmetric_fit(int n, int nmax, float iscale, const float* x, int8_t* L, int offset, float* sumlx,
                   float* suml2);

// Asymmetric search (scale and min, q in 0..nmax) for one group of n values with importance weights w.
// Start from the min/max fit, then try nstep + 1 slightly different inverse scales
// (nmax + rmin + rdelta * is) / (max - min); for each, re-fit scale and min by weighted least squares
// to the rounded levels and keep the best by weighted |err| (use_mad) or err^2. Min is clamped to <= 0
// (a group's minimum is stored as a positive number that is subtracted). A step that improves moves
// the min the later steps start from.
// Returns the scale; *neg_min receives -min (>= 0). L gets the levels; Laux is scratch of n.
float search_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep, bool use_mad);

// search_scale_min for `groups` consecutive groups of n values (group g: x + g * n, w + g * n, L + g * n),
// with the same bits; scales[g] and neg_mins[g] receive what the single-group form returns. n <= 32.
void search_scale_min_groups(int groups, int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales,
                             float* neg_mins, float rmin, float rdelta, int nstep, bool use_mad);

// Symmetric search (q in -nmax..nmax-1, stored as q + nmax) weighting each value by x^2: start at
// the scale that maps the largest-magnitude value onto -nmax, then try 18 nearby inverse scales
// -(nmax + 0.1 * is) / max, is = -9..9, keeping the one with the best least-squares fit
// (largest sum(w x l)^2 / sum(w l^2)). Returns the least-squares scale.
float search_scale_sym(int n, int nmax, const float* x, int8_t* L);

// search_scale_sym for `groups` consecutive groups of n values, with the same bits. n <= 32.
void search_scale_sym_groups(int groups, int n, int nmax, const float* x, int8_t* L, float* scales);

}  // namespace tessera::quant_detail
