// YaRN's correction of RoPE's angles, once for every backend (llama.cpp's published algorithm, rope_yarn):
//   theta_extrap = p * base^(-2i / n_dims) / freq_factor[i]      (pair i, position p)
//   theta_interp = freq_scale * theta_extrap
//   without YaRN (ext_factor == 0): theta = theta_interp, mscale = attn_factor
//   with YaRN: ramp(i) = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)
//              mix = ramp(i) * ext_factor;  theta = theta_interp * (1 - mix) + theta_extrap * mix
//              mscale = attn_factor * (1 + 0.1 ln(1 / freq_scale))
//   corr_dim(beta) = n_dims * ln(n_ctx_orig / (beta * 2 pi)) / (2 ln base)
//   low = max(0, floor(corr_dim(beta_fast))), high = min(n_dims - 1, ceil(corr_dim(beta_slow)))
// What is fixed per node (RopeYarn) is set up on the host; rope_theta runs per pair, on the host or the
// device. All in double, as the reference computes.
#pragma once
#include <algorithm>
#include <cmath>

#include "core/host_device.h"
#include "core/ops.h"

namespace tessera {

struct RopeYarn {
    double freq_scale = 1.0;
    double ext_factor = 0.0;  // 0: no YaRN, theta = theta_interp
    double low = 0.0, high = 0.0;  // the ramp's ends over the pair index
    double mscale = 1.0;           // cos and sin are scaled by this
};

inline RopeYarn rope_yarn(const RopeParams& p) {
    RopeYarn y;
    y.freq_scale = p.freq_scale;
    y.ext_factor = p.ext_factor;
    y.mscale = p.attn_factor;
    if (y.ext_factor != 0.0) {
        const double base = p.freq_base;
        auto corr_dim = [&](double beta) {
            return p.n_dims * std::log(double(p.n_ctx_orig) / (beta * 2.0 * M_PI)) / (2.0 * std::log(base));
        };
        y.low = std::max(0.0, std::floor(corr_dim(p.beta_fast)));
        y.high = std::min(double(p.n_dims - 1), std::ceil(corr_dim(p.beta_slow)));
        y.mscale *= 1.0 + 0.1 * std::log(1.0 / y.freq_scale);
    }
    return y;
}

// The angle of pair i from its extrapolated (unscaled) angle.
TESSERA_HOST_DEVICE double rope_theta(const RopeYarn& y, int i, double theta_extrap) {
    const double theta_interp = y.freq_scale * theta_extrap;
    if (y.ext_factor == 0.0) return theta_interp;
    const double r = (i - y.low) / fmax(0.001, y.high - y.low);
    const double mix = (1.0 - fmin(fmax(r, 0.0), 1.0)) * y.ext_factor;
    return theta_interp * (1.0 - mix) + theta_extrap * mix;
}

}  // namespace tessera
