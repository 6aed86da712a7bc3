// Matrix products: mul_mat (ggml semantics) and mul_mat_id (mixture of experts).
// Weight rows are dequantized with the type's own to_float; dots accumulate in double.
#include "backends/reference/ref_util.h"

namespace tessera::ref::detail {

namespace {

double dot(const float* x, const float* y, int64_t k) {
    double acc = 0.0;
    for (int64_t i = 0; i < k; ++i) acc += double(x[i]) * double(y[i]);
    return acc;
}

}  // namespace

// a [k, n, a2, a3] x b [k, m, b2, b3] -> [n, m, b2, b3]. Broadcast as ggml: b's matrix (i2, i3) pairs with
// a's matrix (i2 / (b2 / a2), i3 / (b3 / a3)), i.e. each a matrix serves a run of consecutive b matrices
// (the grouped-query layout: query head h uses kv head h / group).
void mul_mat(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const Tensor& b = *dst->src[1];
    const int64_t k = a.ne[0], n = a.ne[1], m = b.ne[1];
    const int64_t r2 = b.ne[2] / a.ne[2], r3 = b.ne[3] / a.ne[3];
    std::vector<float> arows(static_cast<size_t>(n * k)), brow(static_cast<size_t>(k));
    int64_t cached2 = -1, cached3 = -1;
    for (int64_t i3 = 0; i3 < b.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < b.ne[2]; ++i2) {
            const int64_t a2 = i2 / r2, a3 = i3 / r3;
            if (a2 != cached2 || a3 != cached3) {
                for (int64_t i = 0; i < n; ++i) read_row(a, i, a2, a3, arows.data() + i * k);
                cached2 = a2;
                cached3 = a3;
            }
            for (int64_t j = 0; j < m; ++j) {
                read_row(b, j, i2, i3, brow.data());
                for (int64_t i = 0; i < n; ++i)
                    store(*dst, float(dot(arows.data() + i * k, brow.data(), k)), i, j, i2, i3);
            }
        }
}

// experts [k, n, n_expert], b [k, b1, m], ids I32 [n_used, m] -> [n, n_used, m]:
// out[:, e, t] = experts[ids[e, t]] x b[:, (b1 == 1 ? 0 : e), t].
void mul_mat_id(Tensor* dst) {
    const Tensor& ex = *dst->src[0];
    const Tensor& b = *dst->src[1];
    const Tensor& ids = *dst->src[2];
    const int64_t k = ex.ne[0], n = ex.ne[1], n_expert = ex.ne[2];
    std::vector<float> arow(static_cast<size_t>(k)), brow(static_cast<size_t>(k));
    for (int64_t t = 0; t < ids.ne[1]; ++t)
        for (int64_t e = 0; e < ids.ne[0]; ++e) {
            const int32_t id = load_i32(ids, e, t);
            TESSERA_CHECK(id >= 0 && id < n_expert, "%s: expert id %d (slot %lld, token %lld) is outside [0, %lld)",
                          label(dst).c_str(), id, (long long)e, (long long)t, (long long)n_expert);
            read_row(b, b.ne[1] == 1 ? 0 : e, t, 0, brow.data());
            for (int64_t i = 0; i < n; ++i) {
                read_row(ex, i, id, 0, arow.data());
                store(*dst, float(dot(arow.data(), brow.data(), k)), i, e, t, 0);
            }
        }
}

}  // namespace tessera::ref::detail
