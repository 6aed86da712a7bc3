// The K-quant scale searches: the single-group forms (llama.cpp's reference algorithm, stated plainly)
// and the batched forms that run eight groups in the lanes of one vector with the same bits. See the header.
//
// Contraction off: see core/quant.cpp. A fused multiply-add in the error sums flips search decisions; the
// vector code below must round every product and sum exactly as the scalar code does.
#pragma GCC optimize("fp-contract=off")
// The 8-lane helpers below pass 32-byte vectors; they are inlined by force (see TESSERA_SEARCH_CLONES), so
// GCC's note that such values cross calls differently with and without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "core/quant_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant_util.h"

namespace tessera::quant_detail {

SignedMax signed_max(int n, const float* x) {
    SignedMax m;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > m.magnitude) m = {x[i], ax};
    }
    return m;
}

void symmetric_fit(int n, int nmax, float iscale, const float* x, int8_t* L, int offset, float* sumlx,
                   float* suml2) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampv(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        if (L) L[i] = int8_t(l + offset);
        const float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

float search_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep, bool use_mad) {
    float mn = x[0], mx = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        const float wi = w[i];
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - mn));
        L[i] = uint8_t(clampv(l, 0, nmax));
        float diff = scale * L[i] + mn - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_err += w[i] * diff;
    }
    if (nstep < 1) {
        *neg_min = -mn;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampv(nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = uint8_t(l);
            const float wi = w[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                err += w[i] * diff;
            }
            if (err < best_err) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_err = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *neg_min = -mn;
    return scale;
}

float search_scale_sym(int n, int nmax, const float* x, int8_t* L) {
    const SignedMax max = signed_max(n, x);
    if (max.magnitude < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float sumlx, suml2;
    symmetric_fit(n, nmax, -nmax / max.value, x, L, nmax, &sumlx, &suml2);
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max.value;
        symmetric_fit(n, nmax, iscale, x, nullptr, 0, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clampv(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

namespace {

// Eight lanes, one group each. GCC/Clang vector extensions: the compiler lowers them to whatever the target
// has (one AVX register, two SSE ones, NEON pairs); element-wise IEEE float ops, so a lane computes what
// the scalar code computes.
constexpr int kLanes = 8;
constexpr int kMaxN = 32;
using vf = float __attribute__((vector_size(kLanes * sizeof(float))));
using vi = int32_t __attribute__((vector_size(kLanes * sizeof(int32_t))));

[[gnu::always_inline]] inline vf splat(float v) { return vf{v, v, v, v, v, v, v, v}; }
[[gnu::always_inline]] inline vi splat_i(int32_t v) { return vi{v, v, v, v, v, v, v, v}; }
[[gnu::always_inline]] inline vf to_float(vi v) { return __builtin_convertvector(v, vf); }

// nearest_int (quant_util.h) per lane: the same float add, the same bits taken.
[[gnu::always_inline]] inline vi nearest_int_v(vf x) {
    const vf v = x + splat(12582912.f);
    vi i;
    std::memcpy(&i, &v, sizeof i);
    return (i & splat_i(0x007fffff)) - splat_i(0x00400000);
}
// Bounds as vectors made once outside the loops: GCC rebuilt splats of runtime values lane by lane (four
// vpinsrd each) inside every iteration.
[[gnu::always_inline]] inline vi clamp_v(vi l, vi lo, vi hi) {
    l = l < lo ? lo : l;
    return l > hi ? hi : l;
}
[[gnu::always_inline]] inline vf fabs_v(vf x) {
    vi bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits &= splat_i(0x7fffffff);
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
// c ? a : b per lane, c a comparison result (all ones or zero per lane).
[[gnu::always_inline]] inline vf select(vi c, vf a, vf b) { return c ? a : b; }

// The batched searches are most of `tessera quantize`'s time, and core is built for the baseline of its
// target: on x86-64 that is SSE2, where the 8-lane vectors split in two and integer compares and selects go
// lane by lane through scalar code (Q4_K_M of a 1.1B F16 model: 48 s at 2 threads, llama-quantize 32 s).
// So on x86-64 they are also compiled for AVX2 and the loader picks the clone the CPU runs (GCC's ifunc
// dispatch). Lane arithmetic is IEEE either way and contraction stays off: the clones give the same bits.
// The lane helpers above are inlined by force into each clone, so no 32-byte vector crosses a call.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TESSERA_SEARCH_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TESSERA_SEARCH_CLONES
#endif

// Lane g of out[i] = src[(first + g) * n + i] for the lanes < count; the other lanes repeat group first
// (harmless work whose results are dropped).
[[gnu::always_inline]] inline void transpose_in(const float* src, int first, int count, int n, vf* out) {
    for (int i = 0; i < n; ++i)
        for (int g = 0; g < kLanes; ++g) out[i][g] = src[(first + (g < count ? g : 0)) * n + i];
}

// Eight groups (lanes < count are real) of search_scale_min.
TESSERA_SEARCH_CLONES void search_scale_min_x8(int first, int count, int n, int nmax, const float* x, const float* w, uint8_t* L,
                         float* scales, float* neg_mins, float rmin, float rdelta, int nstep, bool use_mad) {
    vf xt[kMaxN] = {}, wt[kMaxN] = {};  // n >= 1 is checked by the caller; zeroed so the compiler sees it too
    vi Lt[kMaxN], La[kMaxN];
    transpose_in(x, first, count, n, xt);
    transpose_in(w, first, count, n, wt);

    const vi zero_v = splat_i(0), nmax_v = splat_i(nmax);
    vf mn = xt[0], mx = xt[0];
    vf sum_w = wt[0];
    vf sum_x = sum_w * xt[0];
    for (int i = 1; i < n; ++i) {
        mn = select(xt[i] < mn, xt[i], mn);
        mx = select(xt[i] > mx, xt[i], mx);
        sum_w += wt[i];
        sum_x += wt[i] * xt[i];
    }
    mn = select(mn > splat(0.0f), splat(0.0f), mn);
    const vi flat = mx == mn;  // the scalar form returns early: levels 0, scale 0
    const vf flat_neg_min = -mn;

    vf iscale = splat(float(nmax)) / (mx - mn);
    vf scale = splat(1.0f) / iscale;
    vf best_err = splat(0.0f);
    for (int i = 0; i < n; ++i) {
        Lt[i] = clamp_v(nearest_int_v(iscale * (xt[i] - mn)), zero_v, nmax_v);
        vf diff = scale * to_float(Lt[i]) + mn - xt[i];
        diff = use_mad ? fabs_v(diff) : diff * diff;
        best_err += wt[i] * diff;
    }
    for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
        iscale = splat(rmin + rdelta * is + nmax) / (mx - mn);
        vf sum_l = splat(0.0f), sum_l2 = splat(0.0f), sum_xl = splat(0.0f);
        for (int i = 0; i < n; ++i) {
            La[i] = clamp_v(nearest_int_v(iscale * (xt[i] - mn)), zero_v, nmax_v);
            const vf l = to_float(La[i]);
            const vf wi = wt[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * xt[i];
        }
        const vf D = sum_w * sum_l2 - sum_l * sum_l;
        vf this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        vf this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        const vi positive_min = this_min > splat(0.0f);
        this_min = select(positive_min, splat(0.0f), this_min);
        this_scale = select(positive_min, sum_xl / sum_l2, this_scale);
        vf err = splat(0.0f);
        for (int i = 0; i < n; ++i) {
            vf diff = this_scale * to_float(La[i]) + this_min - xt[i];
            diff = use_mad ? fabs_v(diff) : diff * diff;
            err += wt[i] * diff;
        }
        const vi better = (D > splat(0.0f)) & (err < best_err);
        for (int i = 0; i < n; ++i) Lt[i] = better ? La[i] : Lt[i];
        best_err = select(better, err, best_err);
        scale = select(better, this_scale, scale);
        mn = select(better, this_min, mn);
    }
    for (int g = 0; g < count; ++g) {
        uint8_t* Lg = L + (first + g) * n;
        if (flat[g]) {
            for (int i = 0; i < n; ++i) Lg[i] = 0;
            scales[first + g] = 0.0f;
            neg_mins[first + g] = flat_neg_min[g];
            continue;
        }
        for (int i = 0; i < n; ++i) Lg[i] = uint8_t(Lt[i][g]);
        scales[first + g] = scale[g];
        neg_mins[first + g] = -mn[g];
    }
}

// Eight groups (lanes < count are real) of search_scale_sym.
TESSERA_SEARCH_CLONES void search_scale_sym_x8(int first, int count, int n, int nmax, const float* x, int8_t* L, float* scales) {
    vf xt[kMaxN] = {};
    vi Lt[kMaxN], La[kMaxN];
    transpose_in(x, first, count, n, xt);

    vf max = splat(0.0f), amax = splat(0.0f);
    for (int i = 0; i < n; ++i) {
        const vf ax = fabs_v(xt[i]);
        const vi larger = ax > amax;
        amax = select(larger, ax, amax);
        max = select(larger, xt[i], max);
    }
    const vi tiny = amax < splat(kGroupMaxEps);  // the scalar form returns early: levels 0, scale 0
    const vi lo_v = splat_i(-nmax), hi_v = splat_i(nmax - 1), nmax_v = splat_i(nmax);

    // One pass at inverse scale `iscale`: levels (stored + nmax) and the two least-squares sums.
    auto pass = [&](vf iscale, vi* levels, vf& sumlx, vf& suml2) {
        sumlx = suml2 = splat(0.0f);
        for (int i = 0; i < n; ++i) {
            const vi l = clamp_v(nearest_int_v(iscale * xt[i]), lo_v, hi_v);
            levels[i] = l + nmax_v;
            const vf lf = to_float(l);
            const vf wgt = xt[i] * xt[i];
            sumlx += wgt * xt[i] * lf;
            suml2 += wgt * lf * lf;
        }
    };
    vf sumlx, suml2;
    pass(splat(float(-nmax)) / max, Lt, sumlx, suml2);
    vf scale = select(suml2 != splat(0.0f), sumlx / suml2, splat(0.0f));
    vf best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        pass(splat(-(nmax + 0.1f * is)) / max, La, sumlx, suml2);
        const vi better = (suml2 > splat(0.0f)) & (sumlx * sumlx > best * suml2);
        for (int i = 0; i < n; ++i) Lt[i] = better ? La[i] : Lt[i];
        scale = select(better, sumlx / suml2, scale);
        best = select(better, scale * sumlx, best);
    }
    for (int g = 0; g < count; ++g) {
        int8_t* Lg = L + (first + g) * n;
        for (int i = 0; i < n; ++i) Lg[i] = tiny[g] ? int8_t(0) : int8_t(Lt[i][g]);
        scales[first + g] = tiny[g] ? 0.0f : scale[g];
    }
}

}  // namespace

void search_scale_min_groups(int groups, int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales,
                             float* neg_mins, float rmin, float rdelta, int nstep, bool use_mad) {
    TESSERA_CHECK(n >= 1 && n <= kMaxN, "search_scale_min_groups: group of %d values (1..%d)", n, kMaxN);
    for (int first = 0; first < groups; first += kLanes)
        search_scale_min_x8(first, std::min(kLanes, groups - first), n, nmax, x, w, L, scales, neg_mins, rmin, rdelta,
                            nstep, use_mad);
}

void search_scale_sym_groups(int groups, int n, int nmax, const float* x, int8_t* L, float* scales) {
    TESSERA_CHECK(n >= 1 && n <= kMaxN, "search_scale_sym_groups: group of %d values (1..%d)", n, kMaxN);
    for (int first = 0; first < groups; first += kLanes)
        search_scale_sym_x8(first, std::min(kLanes, groups - first), n, nmax, x, L, scales);
}

}  // namespace tessera::quant_detail
