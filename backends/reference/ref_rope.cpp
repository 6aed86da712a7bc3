// Rotary position embedding, normal and NeoX pair layouts, with linear scaling, per-pair frequency factors
// and YaRN. The YaRN mixing follows llama.cpp's published algorithm (rope_yarn), restated here:
//   theta_extrap = p * base^(-2i / n_dims) / freq_factor[i]      (pair i, position p)
//   theta_interp = freq_scale * theta_extrap
//   without YaRN (ext_factor == 0): theta = theta_interp, mscale = attn_factor
//   with YaRN: ramp(i) = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)
//              mix = ramp(i) * ext_factor;  theta = theta_interp * (1 - mix) + theta_extrap * mix
//              mscale = attn_factor * (1 + 0.1 ln(1 / freq_scale))
//   corr_dim(beta) = n_dims * ln(n_ctx_orig / (beta * 2 pi)) / (2 ln base)
//   low = max(0, floor(corr_dim(beta_fast))), high = min(n_dims - 1, ceil(corr_dim(beta_slow)))
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos) with cos, sin = cos(theta) mscale, sin(theta) mscale.
// Pairs are (2i, 2i + 1) in normal mode and (i, i + n_dims / 2) in NeoX mode; dims from n_dims on pass
// through unchanged.
#include <algorithm>
#include <cmath>

#include "backends/reference/ref_util.h"
#include "core/ops.h"

namespace tessera::ref::detail {

namespace {

double yarn_corr_dim(int n_dims, int n_ctx_orig, double beta, double base) {
    return n_dims * std::log(double(n_ctx_orig) / (beta * 2.0 * M_PI)) / (2.0 * std::log(base));
}

}  // namespace

void rope(Tensor* dst) {
    const Tensor& x = *dst->src[0];
    const Tensor& pos = *dst->src[1];
    const Tensor* ff = dst->src[2];
    const int n_dims = dst->param_i(0);
    const int mode = dst->param_i(1);
    const int n_ctx_orig = dst->param_i(2);
    const double base = dst->param_f(3);
    const double freq_scale = dst->param_f(4);
    const double ext_factor = dst->param_f(5);
    const double attn_factor = dst->param_f(6);
    const double beta_fast = dst->param_f(7);
    const double beta_slow = dst->param_f(8);
    TESSERA_CHECK(mode == kRopeNormal || mode == kRopeNeox, "%s: unknown rope mode %d", label(dst).c_str(), mode);

    double low = 0, high = 0, mscale = attn_factor;
    if (ext_factor != 0.0) {
        low = std::max(0.0, std::floor(yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, base)));
        high = std::min(double(n_dims - 1), std::ceil(yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, base)));
        mscale *= 1.0 + 0.1 * std::log(1.0 / freq_scale);
    }

    const int half = n_dims / 2;
    std::vector<double> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t i3 = 0; i3 < x.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < x.ne[2]; ++i2) {
            const double p = load_i32(pos, i2);
            for (int i = 0; i < half; ++i) {
                double theta_extrap = p * std::pow(base, -2.0 * i / n_dims);
                if (ff) theta_extrap /= double(load(*ff, i));
                const double theta_interp = freq_scale * theta_extrap;
                double theta = theta_interp;
                if (ext_factor != 0.0) {
                    const double y = (i - low) / std::max(0.001, high - low);
                    const double mix = (1.0 - std::clamp(y, 0.0, 1.0)) * ext_factor;
                    theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
                }
                cos_t[i] = std::cos(theta) * mscale;
                sin_t[i] = std::sin(theta) * mscale;
            }
            for (int64_t i1 = 0; i1 < x.ne[1]; ++i1) {
                for (int i = 0; i < half; ++i) {
                    const int64_t j0 = mode == kRopeNeox ? i : 2 * i;
                    const int64_t j1 = mode == kRopeNeox ? i + half : 2 * i + 1;
                    const double x0 = load(x, j0, i1, i2, i3), x1 = load(x, j1, i1, i2, i3);
                    store(*dst, float(x0 * cos_t[i] - x1 * sin_t[i]), j0, i1, i2, i3);
                    store(*dst, float(x0 * sin_t[i] + x1 * cos_t[i]), j1, i1, i2, i3);
                }
                for (int64_t i0 = n_dims; i0 < x.ne[0]; ++i0) store(*dst, load(x, i0, i1, i2, i3), i0, i1, i2, i3);
            }
        }
}

}  // namespace tessera::ref::detail
