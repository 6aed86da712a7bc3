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
    const double eps = dst->param_f(0);
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
    const double eps = dst->param_f(0);
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
    const float scale = dst->param_f(0);
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

double yarn_corr_dim(int n_dims, int n_ctx_orig, double beta, double base) {
    return n_dims * std::log(double(n_ctx_orig) / (beta * 2.0 * M_PI)) / (2.0 * std::log(base));
}

void rope_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& x = *dst->src[0];
    const Tensor& pos = *dst->src[1];
    const Tensor* ff = dst->src[2];
    const int n_dims = dst->param_i(0);
    const bool neox = dst->param_i(1) == kRopeNeox;
    const int n_ctx_orig = dst->param_i(2);
    const double base = dst->param_f(3), freq_scale = dst->param_f(4), ext_factor = dst->param_f(5);
    const double beta_fast = dst->param_f(7), beta_slow = dst->param_f(8);
    double low = 0, high = 0, mscale = dst->param_f(6);
    if (ext_factor != 0.0) {
        low = std::max(0.0, std::floor(yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, base)));
        high = std::min(double(n_dims - 1), std::ceil(yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, base)));
        mscale *= 1.0 + 0.1 * std::log(1.0 / freq_scale);
    }
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
                const double theta_interp = freq_scale * theta_extrap;
                double theta = theta_interp;
                if (ext_factor != 0.0) {
                    const double y = (i - low) / std::max(0.001, high - low);
                    const double mix = (1.0 - std::clamp(y, 0.0, 1.0)) * ext_factor;
                    theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
                }
                cos_t[i] = float(std::cos(theta) * mscale);
                sin_t[i] = float(std::sin(theta) * mscale);
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

bool norm_rope_softmax_fast_ok(const Tensor& node) {
    if (node.type != DType::F32 || !node.is_contiguous() || !rows_contiguous(node.src[0])) return false;
    switch (node.op) {
        case Op::RmsNorm:
        case Op::Norm:
            return true;
        case Op::SoftMax:
            return !node.src[1] || rows_contiguous(node.src[1]);
        case Op::Rope:
            return node.src[1] && node.src[1]->type == DType::I32 && node.param_i(0) > 0 &&
                   (node.param_i(1) == kRopeNormal || node.param_i(1) == kRopeNeox) &&
                   (!node.src[2] || node.src[2]->type == DType::F32);
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
