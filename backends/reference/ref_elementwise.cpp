// Elementwise ops: broadcasting binaries, unary activations, gated units.
// Each value is computed in double and rounded once to float, so a single +, *, / gives the correctly
// rounded float result (double has more than 2 * 24 + 2 bits, so the double rounding is harmless).
#include <algorithm>
#include <cmath>

#include "backends/reference/ref_util.h"
#include "core/ops.h"

namespace tessera::ref::detail {

namespace {

double silu_d(double x) { return x / (1.0 + std::exp(-x)); }
double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// The tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
double gelu_tanh_d(double x) {
    const double c = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}
double gelu_erf_d(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

}  // namespace

// out = a op b, with b repeated over a: element (i0..i3) of a pairs with (i0 % b0, ..., i3 % b3) of b.
void binary(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const Tensor& b = *dst->src[1];
    for (int64_t i3 = 0; i3 < a.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < a.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < a.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < a.ne[0]; ++i0) {
                    const double x = load(a, i0, i1, i2, i3);
                    const double y = load(b, i0 % b.ne[0], i1 % b.ne[1], i2 % b.ne[2], i3 % b.ne[3]);
                    double r = 0;
                    switch (dst->op) {
                        case Op::Add: r = x + y; break;
                        case Op::Mul: r = x * y; break;
                        case Op::Div: r = x / y; break;
                        default: throw Error("reference: " + label(dst) + " is not a binary op");
                    }
                    store(*dst, float(r), i0, i1, i2, i3);
                }
}

void unary(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const double p = elementwise_param(*dst);  // scale factor or softcap
    for (int64_t i3 = 0; i3 < a.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < a.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < a.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < a.ne[0]; ++i0) {
                    const double x = load(a, i0, i1, i2, i3);
                    double r = 0;
                    switch (dst->op) {
                        case Op::Scale: r = x * p; break;
                        case Op::Silu: r = silu_d(x); break;
                        case Op::Gelu: r = gelu_tanh_d(x); break;
                        case Op::GeluErf: r = gelu_erf_d(x); break;
                        case Op::Sigmoid: r = sigmoid_d(x); break;
                        case Op::Softcap: r = p * std::tanh(x / p); break;
                        default: throw Error("reference: " + label(dst) + " is not a unary op");
                    }
                    store(*dst, float(r), i0, i1, i2, i3);
                }
}

// swiglu: silu(gate) * up; geglu: gelu_tanh(gate) * up;
// swiglu_clamped: x = min(gate, limit), y = clamp(up, -limit, limit), x sigmoid(alpha x) (y + 1).
void glu(Tensor* dst) {
    const Tensor& gate = *dst->src[0];
    const Tensor& up = *dst->src[1];
    const SwigluClamp c = dst->op == Op::SwiGluClamped ? swiglu_clamped_params(*dst) : SwigluClamp{0.0f, 0.0f};
    const double alpha = c.alpha, limit = c.limit;
    for (int64_t i3 = 0; i3 < gate.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < gate.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < gate.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < gate.ne[0]; ++i0) {
                    const double g = load(gate, i0, i1, i2, i3);
                    const double u = load(up, i0, i1, i2, i3);
                    if (dst->op == Op::SwiGluClamped) {
                        const double x = std::min(g, limit), y = std::clamp(u, -limit, limit);
                        store(*dst, float(x * sigmoid_d(alpha * x) * (y + 1.0)), i0, i1, i2, i3);
                        continue;
                    }
                    const double act = dst->op == Op::SwiGlu ? silu_d(g) : gelu_tanh_d(g);
                    store(*dst, float(act * u), i0, i1, i2, i3);
                }
}

}  // namespace tessera::ref::detail
