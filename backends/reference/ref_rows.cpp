// Row-wise ops over dim 0: rms_norm, norm, softmax, sum, mean, argmax, top_k.
// Sums accumulate in double.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/reference/ref_util.h"
#include "core/ops.h"

namespace tessera::ref::detail {

namespace {

// Calls f(i1, i2, i3) for every row of t.
template <class F>
void for_each_row(const Tensor& t, F&& f) {
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1) f(i1, i2, i3);
}

}  // namespace

// x / sqrt(mean(x^2) + eps)
void rms_norm(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const double eps = norm_eps(*dst);
    const int64_t n = a.ne[0];
    std::vector<float> x(static_cast<size_t>(n));
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        read_row(a, i1, i2, i3, x.data());
        double ss = 0;
        for (float v : x) ss += double(v) * v;
        const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
        for (int64_t i0 = 0; i0 < n; ++i0) store(*dst, float(x[i0] * inv), i0, i1, i2, i3);
    });
}

// (x - mean) / sqrt(var + eps), var the population variance (divided by n), computed in two passes.
void norm(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const double eps = norm_eps(*dst);
    const int64_t n = a.ne[0];
    std::vector<float> x(static_cast<size_t>(n));
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        read_row(a, i1, i2, i3, x.data());
        double s = 0;
        for (float v : x) s += v;
        const double mean = s / double(n);
        double var = 0;
        for (float v : x) var += (v - mean) * (v - mean);
        const double inv = 1.0 / std::sqrt(var / double(n) + eps);
        for (int64_t i0 = 0; i0 < n; ++i0) store(*dst, float((x[i0] - mean) * inv), i0, i1, i2, i3);
    });
}

// softmax(x * scale + mask[:, i1]); mask rows broadcast over dims 2, 3. A row whose every entry is -inf
// (fully masked) gives zeros, not NaN.
void softmax(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const Tensor* mask = dst->src[1];
    const double scale = softmax_scale(*dst);
    const int64_t n = a.ne[0];
    std::vector<double> v(static_cast<size_t>(n));
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        double mx = -INFINITY;
        for (int64_t i0 = 0; i0 < n; ++i0) {
            double x = double(load(a, i0, i1, i2, i3)) * scale;
            if (mask) x += load(*mask, i0, i1);
            v[i0] = x;
            mx = std::max(mx, x);
        }
        if (mx == -INFINITY) {
            for (int64_t i0 = 0; i0 < n; ++i0) store(*dst, 0.0f, i0, i1, i2, i3);
            return;
        }
        double s = 0;
        for (int64_t i0 = 0; i0 < n; ++i0) s += (v[i0] = std::exp(v[i0] - mx));
        for (int64_t i0 = 0; i0 < n; ++i0) store(*dst, float(v[i0] / s), i0, i1, i2, i3);
    });
}

void sum_mean(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const int64_t n = a.ne[0];
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        double s = 0;
        for (int64_t i0 = 0; i0 < n; ++i0) s += load(a, i0, i1, i2, i3);
        store(*dst, float(dst->op == Op::Mean ? s / double(n) : s), 0, i1, i2, i3);
    });
}

// Output [ne1, ne2, ne3, 1]: row (i1, i2, i3) of a gives element (i1, i2, i3) of dst. Ties -> lowest index.
void argmax(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        int64_t best = 0;
        float best_v = load(a, 0, i1, i2, i3);
        for (int64_t i0 = 1; i0 < a.ne[0]; ++i0) {
            const float x = load(a, i0, i1, i2, i3);
            if (x > best_v) {
                best_v = x;
                best = i0;
            }
        }
        store_i32(*dst, int32_t(best), i1, i2, i3);
    });
}

// Indices of the k largest, largest first; equal values keep index order (lower first).
void top_k(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const int64_t k = top_k_count(*dst);
    std::vector<float> x(static_cast<size_t>(a.ne[0]));
    std::vector<int32_t> idx(static_cast<size_t>(a.ne[0]));
    for_each_row(a, [&](int64_t i1, int64_t i2, int64_t i3) {
        read_row(a, i1, i2, i3, x.data());
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int32_t p, int32_t q) { return x[p] > x[q]; });
        for (int64_t j = 0; j < k; ++j) store_i32(*dst, idx[j], j, i1, i2, i3);
    });
}

}  // namespace tessera::ref::detail
