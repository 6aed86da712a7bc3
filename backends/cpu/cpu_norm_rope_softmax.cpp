// Row-wise ops on the cpu backend: rms_norm, norm, softmax (with mask) and
// rope. Sums run in float vector lanes and are finished in double; scale
// factors are computed in double like the reference. rope's cos/sin table is
// computed per token in double with the reference's formulas (see
// backends/reference/ref_rope.cpp and core/ops.h), then applied to every head.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/cpu_simd.h"
#include "core/ops.h"
#include "core/rope_yarn.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

bool rows_contiguous(const Tensor* t) { return t && t->type == DType::F32 && t->nb[0] == sizeof(float); }

inline void row_index(const Tensor& shape, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3) {
    i1 = r % shape.ne[1];
    i2 = (r / shape.ne[1]) % shape.ne[2];
    i3 = r / (shape.ne[1] * shape.ne[2]);
}

// Sum of f(x[i]) over n floats: two vector accumulators, finished in double.
template <class F>
double row_sum(const float* x, int64_t n, F f) {
    vfloat a0(0.0f), a1(0.0f);
    int64_t i = 0;
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
        a0 += f(vload(x + i));
        a1 += f(vload(x + i + kLanes));
    }
    for (; i + kLanes <= n; i += kLanes) a0 += f(vload(x + i));
    alignas(64) float lanes[kLanes];
    (a0 + a1).store_aligned(lanes);
    double s = 0;
    for (int j = 0; j < kLanes; ++j) s += lanes[j];
    for (; i < n; ++i) {
        alignas(64) float t[kLanes] = {};
        t[0] = x[i];
        f(vfloat::load_aligned(t)).store_aligned(t);
        s += t[0];
    }
    return s;
}

// y = (x - shift) * mul over n floats.
void affine_row(const float* x, float* y, int64_t n, float shift, float mul) {
    const vfloat sv(shift), mv(mul);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) ((vload(x + i) - sv) * mv).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = (x[i] - shift) * mul;
}

void rms_norm_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& a = *dst->src[0];
    const double eps = norm_eps(*dst);
    const int64_t n = a.ne[0];
    parallel_chunks(pool, a.nrows(), threads_for(pool.size(), double(a.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(a, r, i1, i2, i3);
            const float* x = reinterpret_cast<const float*>(a.at(0, i1, i2, i3));
            const double ss = row_sum(x, n, [](vfloat v) { return v * v; });
            affine_row(x, reinterpret_cast<float*>(dst->at(0, i1, i2, i3)), n, 0.0f,
                       float(1.0 / std::sqrt(ss / double(n) + eps)));
        }
    });
}

void norm_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& a = *dst->src[0];
    const double eps = norm_eps(*dst);
    const int64_t n = a.ne[0];
    parallel_chunks(pool, a.nrows(), threads_for(pool.size(), double(a.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(a, r, i1, i2, i3);
            const float* x = reinterpret_cast<const float*>(a.at(0, i1, i2, i3));
            const float mean = float(row_sum(x, n, [](vfloat v) { return v; }) / double(n));
            const vfloat mv(mean);
            const double var = row_sum(x, n, [mv](vfloat v) { return (v - mv) * (v - mv); });
            affine_row(x, reinterpret_cast<float*>(dst->at(0, i1, i2, i3)), n, mean,
                       float(1.0 / std::sqrt(var / double(n) + eps)));
        }
    });
}

void softmax_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& a = *dst->src[0];
    const Tensor* mask = dst->src[1];
    const float scale = softmax_scale(*dst);
    const int64_t n = a.ne[0];
    parallel_chunks(pool, a.nrows(), threads_for(pool.size(), double(a.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(a, r, i1, i2, i3);
            const float* x = reinterpret_cast<const float*>(a.at(0, i1, i2, i3));
            const float* mrow = mask ? reinterpret_cast<const float*>(mask->at(0, i1)) : nullptr;
            float* y = reinterpret_cast<float*>(dst->at(0, i1, i2, i3));
            // y = x * scale + mask, and its max.
            const vfloat sv(scale);
            vfloat mxv(-INFINITY);
            int64_t i = 0;
            for (; i + kLanes <= n; i += kLanes) {
                vfloat v = vload(x + i) * sv;
                if (mrow) v += vload(mrow + i);
                v.store_unaligned(y + i);
                mxv = xsimd::max(mxv, v);
            }
            alignas(64) float lanes[kLanes];
            mxv.store_aligned(lanes);
            float mx = *std::max_element(lanes, lanes + kLanes);
            for (; i < n; ++i) {
                y[i] = x[i] * scale + (mrow ? mrow[i] : 0.0f);
                mx = std::max(mx, y[i]);
            }
            if (mx == -INFINITY) {  // fully masked row: zeros, as the reference defines it
                std::fill(y, y + n, 0.0f);
                continue;
            }
            // y = exp(y - max) and its sum, then normalize.
            const vfloat mv(mx);
            vfloat sum(0.0f);
            for (i = 0; i + kLanes <= n; i += kLanes) {
                const vfloat e = xsimd::exp(vload(y + i) - mv);
                e.store_unaligned(y + i);
                sum += e;
            }
            double s = xsimd::hadd(sum);
            if (i < n) {
                alignas(64) float t[kLanes];
                for (int j = 0; j < kLanes; ++j) t[j] = -INFINITY;
                for (int64_t j = i; j < n; ++j) t[j - i] = y[j];
                xsimd::exp(vfloat::load_aligned(t) - mv).store_aligned(t);
                for (int64_t j = i; j < n; ++j) s += (y[j] = t[j - i]);
            }
            affine_row(y, y, n, 0.0f, float(1.0 / s));
        }
    });
}

void rope_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& x = *dst->src[0];
    const Tensor& pos = *dst->src[1];
    const Tensor* ff = dst->src[2];
    const RopeParams rp = rope_params(*dst);
    const int n_dims = rp.n_dims;
    const bool neox = rp.mode == kRopeNeox;
    const double base = rp.freq_base;
    const RopeYarn yarn = rope_yarn(rp);
    const int half = n_dims / 2;
    // Per-pair inverse frequency, shared by every token.
    std::vector<double> inv_freq(size_t(half), 0.0);
    for (int i = 0; i < half; ++i) {
        inv_freq[size_t(i)] = std::pow(base, -2.0 * i / n_dims);
        if (ff) inv_freq[size_t(i)] /= double(*reinterpret_cast<const float*>(ff->at(i)));
    }
    const int64_t n_tok = x.ne[2] * x.ne[3];
    parallel_chunks(pool, n_tok, threads_for(pool.size(), double(x.nelements())), [&](int64_t t0, int64_t t1, int) {
        std::vector<float> cs(size_t(2 * half));
        float* cos_t = cs.data();
        float* sin_t = cs.data() + half;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t i2 = t % x.ne[2], i3 = t / x.ne[2];
            const double p = *reinterpret_cast<const int32_t*>(pos.at(i2));
            for (int i = 0; i < half; ++i) {
                const double theta_extrap = p * inv_freq[size_t(i)];
                const double theta = rope_theta(yarn, i, theta_extrap);
                cos_t[i] = float(std::cos(theta) * yarn.mscale);
                sin_t[i] = float(std::sin(theta) * yarn.mscale);
            }
            for (int64_t h = 0; h < x.ne[1]; ++h) {
                const float* src = reinterpret_cast<const float*>(x.at(0, h, i2, i3));
                float* out = reinterpret_cast<float*>(dst->at(0, h, i2, i3));
                if (neox) {
                    int i = 0;
                    for (; i + kLanes <= half; i += kLanes) {
                        const vfloat x0 = vload(src + i), x1 = vload(src + i + half);
                        const vfloat c = vload(cos_t + i), s = vload(sin_t + i);
                        xsimd::fms(x0, c, x1 * s).store_unaligned(out + i);
                        xsimd::fma(x0, s, x1 * c).store_unaligned(out + i + half);
                    }
                    for (; i < half; ++i) {
                        const float x0 = src[i], x1 = src[i + half];
                        out[i] = x0 * cos_t[i] - x1 * sin_t[i];
                        out[i + half] = x0 * sin_t[i] + x1 * cos_t[i];
                    }
                } else {
                    for (int i = 0; i < half; ++i) {
                        const float x0 = src[2 * i], x1 = src[2 * i + 1];
                        out[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
                        out[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
                    }
                }
                for (int64_t i0 = n_dims; i0 < x.ne[0]; ++i0) out[i0] = src[i0];
            }
        }
    });
}

}  // namespace

bool norm_rope_softmax_ok(const Tensor& node) {
    if (node.type != DType::F32 || !node.is_contiguous() || !rows_contiguous(node.src[0])) return false;
    switch (node.op) {
        case Op::RmsNorm:
        case Op::Norm:
            return true;
        case Op::SoftMax:
            return !node.src[1] || rows_contiguous(node.src[1]);
        case Op::Rope: {
            const RopeParams rp = rope_params(node);
            return node.src[1] && node.src[1]->type == DType::I32 && rp.n_dims > 0 &&
                   (rp.mode == kRopeNormal || rp.mode == kRopeNeox) &&
                   (!node.src[2] || node.src[2]->type == DType::F32);
        }
        default:
            return false;
    }
}

void norm_rope_softmax(Tensor* dst, ThreadPool& pool) {
    switch (dst->op) {
        case Op::RmsNorm: return rms_norm_rows(dst, pool);
        case Op::Norm: return norm_rows(dst, pool);
        case Op::SoftMax: return softmax_rows(dst, pool);
        case Op::Rope: return rope_rows(dst, pool);
        default: break;
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
