// Elementwise ops on the cpu backend: broadcasting add/mul/div, scale, the
// activations and the gated units. xsimd inner loops over a row, OpenMP over
// rows. add/mul/div/scale are single correctly rounded float operations, so
// they equal the reference bit for bit; the activations use xsimd's accurate
// exp/tanh/erfc in forms that avoid cancellation (gelu as x * sigmoid(2z),
// gelu_erf with erfc), so they stay within a few ulp of the double reference.
#include <cmath>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/cpu_simd.h"
#include "core/ops.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

bool rows_contiguous(const Tensor* t) { return t && t->type == DType::F32 && t->nb[0] == sizeof(float); }

inline vfloat silu_v(vfloat x) { return x / (vfloat(1.0f) + xsimd::exp(-x)); }
inline vfloat sigmoid_v(vfloat x) { return vfloat(1.0f) / (vfloat(1.0f) + xsimd::exp(-x)); }
// 0.5 x (1 + tanh(z)) == x / (1 + exp(-2z)), z = sqrt(2/pi) (x + 0.044715 x^3).
inline vfloat gelu_v(vfloat x) {
    const vfloat z = vfloat(0.7978845608028654f) * (x + vfloat(0.044715f) * x * x * x);
    return x / (vfloat(1.0f) + xsimd::exp(vfloat(-2.0f) * z));
}
// 0.5 x (1 + erf(x / sqrt 2)) == 0.5 x erfc(-x / sqrt 2).
inline vfloat gelu_erf_v(vfloat x) { return vfloat(0.5f) * x * xsimd::erfc(x * vfloat(-0.7071067811865476f)); }

// y[i] = f(x[i]) for n floats; the tail goes through the same vector code on a padded copy.
template <class F>
void map1(const float* x, float* y, int64_t n, F f) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) f(vload(x + i)).store_unaligned(y + i);
    if (i < n) {
        alignas(64) float t[kLanes] = {};
        for (int64_t j = i; j < n; ++j) t[j - i] = x[j];
        f(vfloat::load_aligned(t)).store_aligned(t);
        for (int64_t j = i; j < n; ++j) y[j] = t[j - i];
    }
}

template <class F>
void map2(const float* a, const float* b, float* y, int64_t n, F f) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) f(vload(a + i), vload(b + i)).store_unaligned(y + i);
    if (i < n) {
        alignas(64) float ta[kLanes] = {}, tb[kLanes];
        for (int j = 0; j < kLanes; ++j) tb[j] = 1.0f;  // keeps a padded division finite
        for (int64_t j = i; j < n; ++j) {
            ta[j - i] = a[j];
            tb[j - i] = b[j];
        }
        f(vfloat::load_aligned(ta), vfloat::load_aligned(tb)).store_aligned(ta);
        for (int64_t j = i; j < n; ++j) y[j] = ta[j - i];
    }
}

// Row r of a tensor shaped like `shape` -> (i1, i2, i3).
inline void row_index(const Tensor& shape, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3) {
    i1 = r % shape.ne[1];
    i2 = (r / shape.ne[1]) % shape.ne[2];
    i3 = r / (shape.ne[1] * shape.ne[2]);
}

template <class F>
void binary_rows(Tensor* dst, ThreadPool& pool, F f) {
    const Tensor& a = *dst->src[0];
    const Tensor& b = *dst->src[1];
    const int64_t n = a.ne[0], nb0 = b.ne[0];
    parallel_chunks(pool, a.nrows(), threads_for(pool.size(), double(a.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(a, r, i1, i2, i3);
            const float* x = reinterpret_cast<const float*>(a.at(0, i1, i2, i3));
            const float* y = reinterpret_cast<const float*>(b.at(0, i1 % b.ne[1], i2 % b.ne[2], i3 % b.ne[3]));
            float* out = reinterpret_cast<float*>(dst->at(0, i1, i2, i3));
            if (nb0 == n) {
                map2(x, y, out, n, f);
            } else if (nb0 == 1) {
                const vfloat yv(*y);
                map1(x, out, n, [&](vfloat v) { return f(v, yv); });
            } else {  // b's row repeats along a's row
                for (int64_t s = 0; s < n; s += nb0) map2(x + s, y, out + s, nb0, f);
            }
        }
    });
}

template <class F>
void unary_rows(Tensor* dst, ThreadPool& pool, F f) {
    const Tensor& a = *dst->src[0];
    parallel_chunks(pool, a.nrows(), threads_for(pool.size(), double(a.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(a, r, i1, i2, i3);
            map1(reinterpret_cast<const float*>(a.at(0, i1, i2, i3)), reinterpret_cast<float*>(dst->at(0, i1, i2, i3)),
                 a.ne[0], f);
        }
    });
}

// out = f(gate, up) elementwise, row by row (gate and up of one shape).
template <class F>
void glu_rows(Tensor* dst, ThreadPool& pool, F f) {
    const Tensor& g = *dst->src[0];
    const Tensor& u = *dst->src[1];
    parallel_chunks(pool, g.nrows(), threads_for(pool.size(), double(g.nelements())), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t i1, i2, i3;
            row_index(g, r, i1, i2, i3);
            map2(reinterpret_cast<const float*>(g.at(0, i1, i2, i3)), reinterpret_cast<const float*>(u.at(0, i1, i2, i3)),
                 reinterpret_cast<float*>(dst->at(0, i1, i2, i3)), g.ne[0],
                 f);
        }
    });
}

}  // namespace

bool elementwise_ok(const Tensor& node) {
    if (node.type != DType::F32 || !node.is_contiguous() || !rows_contiguous(node.src[0])) return false;
    switch (node.op) {
        case Op::Add:
        case Op::Mul:
        case Op::Div:
            return rows_contiguous(node.src[1]);
        case Op::SwiGlu:
        case Op::GeGlu:
        case Op::SwiGluClamped:
            return rows_contiguous(node.src[1]) && node.src[1]->same_shape(*node.src[0]);
        case Op::Scale:
        case Op::Silu:
        case Op::Gelu:
        case Op::GeluErf:
        case Op::Sigmoid:
        case Op::Softcap:
            return true;
        default:
            return false;
    }
}

void elementwise(Tensor* dst, ThreadPool& pool) {
    const float p = elementwise_param(*dst);
    switch (dst->op) {
        case Op::Add: return binary_rows(dst, pool, [](vfloat x, vfloat y) { return x + y; });
        case Op::Mul: return binary_rows(dst, pool, [](vfloat x, vfloat y) { return x * y; });
        case Op::Div: return binary_rows(dst, pool, [](vfloat x, vfloat y) { return x / y; });
        case Op::Scale: return unary_rows(dst, pool, [p](vfloat x) { return x * vfloat(p); });
        case Op::Silu: return unary_rows(dst, pool, silu_v);
        case Op::Gelu: return unary_rows(dst, pool, gelu_v);
        case Op::GeluErf: return unary_rows(dst, pool, gelu_erf_v);
        case Op::Sigmoid: return unary_rows(dst, pool, sigmoid_v);
        case Op::Softcap:
            return unary_rows(dst, pool, [p](vfloat x) { return vfloat(p) * xsimd::tanh(x / vfloat(p)); });
        case Op::SwiGlu: return glu_rows(dst, pool, [](vfloat g, vfloat u) { return silu_v(g) * u; });
        case Op::GeGlu: return glu_rows(dst, pool, [](vfloat g, vfloat u) { return gelu_v(g) * u; });
        case Op::SwiGluClamped: {
            const SwigluClamp c = swiglu_clamped_params(*dst);
            const vfloat alpha(c.alpha), limit(c.limit);
            return glu_rows(dst, pool, [=](vfloat g, vfloat u) {
                const vfloat x = xsimd::min(g, limit), y = xsimd::max(xsimd::min(u, limit), -limit);
                return x * sigmoid_v(alpha * x) * (y + vfloat(1.0f));
            });
        }
        default: break;
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
