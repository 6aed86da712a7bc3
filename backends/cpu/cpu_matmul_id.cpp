// mul_mat_id (mixture of experts) on the cpu backend: tokens are grouped by
// the expert they picked, so each selected expert's weights are read once per
// call (unselected experts are never touched), then each group runs as one
// ordinary matmul job and the results are scattered back to [n, n_used, m].
#include <cstring>

#include "backends/cpu/cpu_ops.h"
#include "core/error.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

bool mul_mat_id_ok(const Tensor& node) {
    const Tensor* e = node.src[0];
    const Tensor* b = node.src[1];
    const Tensor* ids = node.src[2];
    if (!e || !b || !ids || b->type != DType::F32 || ids->type != DType::I32) return false;
    if (node.type != DType::F32 || !node.is_contiguous()) return false;
    if (!matmul_weight_type_ok(e->type) || e->nb[0] != type_traits(e->type).block_bytes) return false;
    const size_t es = e->type == DType::F32 ? 4 : 2;
    if (!type_traits(e->type).quantized && (e->nb[1] % es != 0 || e->nb[2] % es != 0)) return false;
    return b->nb[0] == sizeof(float) && ids->nb[0] == sizeof(int32_t);
}

void mul_mat_id(Tensor* dst, ThreadPool& pool, Scratch& scratch) {
    const Tensor* experts = dst->src[0];
    const Tensor* b = dst->src[1];
    const Tensor* ids = dst->src[2];
    const int64_t k = experts->ne[0], n = experts->ne[1], n_expert = experts->ne[2];
    const int64_t n_used = ids->ne[0], n_tok = ids->ne[1];

    // Group (slot, token) pairs by expert; every id is checked before any is used.
    std::vector<std::vector<std::pair<int64_t, int64_t>>> groups(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t e = 0; e < n_used; ++e) {
            const int32_t x = *reinterpret_cast<const int32_t*>(ids->at(e, t));
            TESSERA_CHECK(x >= 0 && x < n_expert, "mul_mat_id '%s': expert id %d at [%lld, %lld] is outside [0, %lld)",
                          dst->name.c_str(), x, (long long)e, (long long)t, (long long)n_expert);
            groups[size_t(x)].push_back({e, t});
        }

    // Gather each group's activation rows contiguously; results go to a contiguous temp, then scatter.
    const size_t pairs = size_t(n_used * n_tok);
    // Row stride kept off multiples of 1 KiB, as mul_mat does, so register-blocked rows do not share L1 sets.
    const int64_t astride = (k * 4) % 1024 == 0 ? k + 16 : k;
    float* acts = reinterpret_cast<float*>(scratch.shared(2, pairs * size_t(astride) * sizeof(float)));
    float* outs = reinterpret_cast<float*>(scratch.shared(3, pairs * size_t(n) * sizeof(float)));
    std::vector<MatmulJob> jobs;
    std::vector<const std::pair<int64_t, int64_t>*> row_of(pairs, nullptr);
    size_t row = 0;
    for (int64_t x = 0; x < n_expert; ++x) {
        const auto& g = groups[size_t(x)];
        if (g.empty()) continue;
        MatmulJob job;
        job.wtype = experts->type;
        job.w = experts->at(0, 0, x);
        job.w_stride = experts->nb[1];
        job.n = n;
        job.k = k;
        job.act = acts + row * size_t(astride);
        job.act_stride = size_t(astride);
        job.m = int64_t(g.size());
        job.out = outs + row * size_t(n);
        job.out_stride = size_t(n);
        jobs.push_back(job);
        for (const auto& p : g) row_of[row++] = &p;
    }
    parallel_chunks(pool, int64_t(pairs), threads_for(pool.size(), double(pairs) * double(k)), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const auto [e, t] = *row_of[size_t(r)];
            std::memcpy(acts + r * astride, b->at(0, b->ne[1] == 1 ? 0 : e, t), size_t(k) * sizeof(float));
        }
    });
    run_matmul_jobs(jobs, pool, scratch);
    parallel_chunks(pool, int64_t(pairs), threads_for(pool.size(), double(pairs) * double(n)), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const auto [e, t] = *row_of[size_t(r)];
            std::memcpy(dst->at(0, e, t), outs + r * n, size_t(n) * sizeof(float));
        }
    });
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
