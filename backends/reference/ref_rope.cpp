// Rotary position embedding, normal and NeoX pair layouts, with linear scaling, per-pair frequency factors
// and YaRN:
//   theta_extrap = p * base^(-2i / n_dims) / freq_factor[i]      (pair i, position p)
//   theta = rope_theta(theta_extrap): freq_scale * theta_extrap, mixed back toward theta_extrap by YaRN's
//           ramp when ext_factor != 0 (core/rope_yarn.h states the ramp; every backend uses that one)
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos) with cos, sin = cos(theta) mscale, sin(theta) mscale.
// Pairs are (2i, 2i + 1) in normal mode and (i, i + n_dims / 2) in NeoX mode; dims from n_dims on pass
// through unchanged.
#include <algorithm>
#include <cmath>

#include "backends/reference/ref_util.h"
#include "core/ops.h"
#include "core/rope_yarn.h"

namespace tessera::ref::detail {

void rope(Tensor* dst) {
    const Tensor& x = *dst->src[0];
    const Tensor& pos = *dst->src[1];
    const Tensor* ff = dst->src[2];
    const RopeParams rp = rope_params(*dst);
    const int n_dims = rp.n_dims;
    const int mode = rp.mode;
    const double base = rp.freq_base;
    TESSERA_CHECK(mode == kRopeNormal || mode == kRopeNeox, "%s: unknown rope mode %d", label(dst).c_str(), mode);
    const RopeYarn yarn = rope_yarn(rp);

    const int half = n_dims / 2;
    std::vector<double> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t i3 = 0; i3 < x.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < x.ne[2]; ++i2) {
            const double p = load_i32(pos, i2);
            for (int i = 0; i < half; ++i) {
                double theta_extrap = p * std::pow(base, -2.0 * i / n_dims);
                if (ff) theta_extrap /= double(load(*ff, i));
                const double theta = rope_theta(yarn, i, theta_extrap);
                cos_t[i] = std::cos(theta) * yarn.mscale;
                sin_t[i] = std::sin(theta) * yarn.mscale;
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
