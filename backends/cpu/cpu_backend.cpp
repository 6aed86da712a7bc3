// The cpu backend: runs a graph's nodes in order on host memory. Ops with a
// fast path (xsimd inner loops, the backend's thread pool across rows / weight panels) go to the
// cpu_*.cpp kernels when the node's layout suits them; attention goes to the
// fused kernel in attention.cpp; everything else (and any layout a fast path
// declines) is computed by the reference ops, so the backend supports exactly
// what the reference does plus its own fast paths.
//
// The kernels are those of one level (cpu_level.h), resolved when the backend is made: the best this CPU
// has, or the one BackendOptions::cpu_level / TESSERA_CPU asks for.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/rows8_k_layout.h"
#include "backends/cpu/rows8_layout.h"
#include "backends/host_backend.h"
#include "backends/op_family.h"
#include "backends/reference/reference_ops.h"
#include "backends/registry.h"

namespace tessera {

namespace {

// The family whose kernel computes the node, or OpFamily::Other when its kernel declines the node's
// layout (or it has none): the reference op computes it then.
OpFamily kernel_family(const cpu::CpuKernels& k, const Tensor& node) {
    const OpFamily f = op_family(node.op);
    // Repacked weights are read by their level's mul_mat only; the reference refuses them, naming the weight.
    if (f != OpFamily::View && f != OpFamily::MulMat && repacked_source(node)) return OpFamily::Other;
    switch (f) {
        case OpFamily::MulMat: return k.mul_mat_ok(node) ? f : OpFamily::Other;
        case OpFamily::MulMatId: return k.mul_mat_id_ok(node) ? f : OpFamily::Other;
        case OpFamily::Elementwise: return k.elementwise_ok(node) ? f : OpFamily::Other;
        case OpFamily::NormRopeSoftmax: return k.norm_rope_softmax_ok(node) ? f : OpFamily::Other;
        case OpFamily::Copy: return k.copy_ok(node) ? f : OpFamily::Other;
        default: return f;  // View (nothing to compute), Attention (the fused kernel takes every layout), Other
    }
}

class CpuBackend final : public HostBackendBase {
public:
    CpuBackend(int threads, const cpu::CpuKernels& kernels)
        : pool_(threads > 0 ? threads : physical_cores()), k_(kernels) {}
    std::string name() const override { return "cpu"; }
    std::string kernel_level() const override { return k_.name(); }

    bool supports(const Tensor& node) const override {
        const OpFamily f = kernel_family(k_, node);
        if (f == OpFamily::Other || f == OpFamily::Attention) return ref::supports(node);
        return true;
    }

    void compute(const Graph& graph) override {
        const std::vector<Tensor*>& nodes = graph.nodes();
        for (size_t i = 0; i < nodes.size(); ++i) {
            if (kernel_family(k_, *nodes[i]) == OpFamily::MulMat && k_.mul_mat_in_place(*nodes[i]))
                i = compute_mul_mat_group(nodes, i);
            else
                compute_node(nodes[i]);
        }
    }

    // Some levels keep 2-D weights in a layout of their own, made here in parallel: the amx level
    // Q4_0 / Q8_0 / K-quants / F16 / BF16 in its tiles (amx_repack.h), the avx2 and avx512 levels
    // Q4_0 / Q8_0 / IQ4_NL (rows8_layout.h) and Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS (rows8_k_layout.h) in interleaved
    // rows, which a decode batch of several sequences reads once for all of them. At those two levels the float weights (F16, BF16, F32) are copied
    // as they are (kFloatCopy): the layout is the file's, the memory is the backend's (see float_copy).
    std::unique_ptr<Buffer> repack_weights(const std::vector<Tensor*>& weights,
                                           const RepackSourceDone& source_done) override {
        // The amx level's kernels include the avx512 level's, so the types the tiles do not take (IQ4_NL,
        // IQ4_XS, Q2_K, Q3_K) go into interleaved rows there as they do at avx512.
        if (k_.level == cpu::CpuLevel::Amx)
            return repack_into({kAmxTiles, kRows8, kRows8K}, weights, source_done);
        if (k_.level == cpu::CpuLevel::Avx2 || k_.level == cpu::CpuLevel::Avx512)
            return repack_into({kRows8, kRows8K, kFloatCopy}, weights, source_done);
        return nullptr;
    }

    void set_threads(int threads) override { pool_.resize(threads > 0 ? threads : physical_cores()); }
    int threads() const override { return pool_.size(); }
    size_t scratch_bytes(const Tensor& node) const override {
        return node.op == Op::Attention ? k_.attention_scratch_bytes(node, pool_.size()) : 0;
    }

private:
    struct Layout {
        bool (*repackable)(DType);
        int64_t (*row_multiple)(DType);  // values a row's length must be a multiple of
        size_t (*packed_bytes)(DType, int64_t rows, int64_t k);
        void (*repack)(DType, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
        uint32_t flags;
    };

    // Float weights copied byte for byte into the backend's buffer, which lies on 2 MiB pages (HostBuffer),
    // instead of read from the file's mapping on 4 KiB pages. Decode streams a few rows at a time through
    // each matrix; on the page cache's 4 KiB pages it read F16 at 0.75x the speed it reads the same bytes
    // on huge pages (AMD EPYC Zen 4, TinyLlama-1.1B F16, tg32 at 2 threads, avx512 level, alternated:
    // 11.3-12.6 tok/s mapped, 14.4-16.4 copied). The quantized types already get this from their repacking.
    // No flag: every kernel and the reference read the copy as they read the file.
    static bool float_weight(DType t) { return t == DType::F16 || t == DType::BF16 || t == DType::F32; }
    static void float_copy(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
        const size_t row = row_bytes(t, k);
        for (int64_t r = 0; r < rows; ++r)
            std::memcpy(static_cast<char*>(dst) + size_t(r) * row, static_cast<const char*>(src) + size_t(r) * src_row_stride, row);
    }
    static constexpr Layout kAmxTiles{cpu::amx_layout::repackable, cpu::amx_layout::record_values,
                                      cpu::amx_layout::packed_bytes, cpu::amx_layout::repack, kFlagRepacked};
    static constexpr Layout kRows8{cpu::rows8_layout::repackable, [](DType) { return int64_t(cpu::rows8_layout::kBlockValues); },
                                   cpu::rows8_layout::packed_bytes, cpu::rows8_layout::repack, kFlagRepacked | kFlagRows8};
    static constexpr Layout kRows8K{cpu::rows8_k_layout::repackable, [](DType) { return int64_t(cpu::rows8_k_layout::kBlockValues); },
                                    cpu::rows8_k_layout::packed_bytes, cpu::rows8_k_layout::repack, kFlagRepacked | kFlagRows8};
    static constexpr Layout kFloatCopy{float_weight, [](DType) { return int64_t(1); },
                                       [](DType t, int64_t rows, int64_t k) { return size_t(rows) * row_bytes(t, k); },
                                       float_copy, 0};

    // Each weight goes into the first of `layouts` that has its type (none: it stays as it is).
    std::unique_ptr<Buffer> repack_into(std::initializer_list<Layout> layouts, const std::vector<Tensor*>& weights,
                                        const RepackSourceDone& source_done) {
        std::vector<Tensor*> todo;
        std::vector<const Layout*> layout_of;
        std::vector<size_t> offset;
        size_t total = 0;
        for (Tensor* t : weights) {
            if (!t || t->op != Op::None || !t->data || (t->flags & kFlagRepacked)) continue;
            const Layout* found = nullptr;
            for (const Layout& l : layouts)
                if (!found && l.repackable(t->type)) found = &l;
            if (!found) continue;
            const Layout& L = *found;
            if (t->ne[2] != 1 || t->ne[3] != 1 || t->ne[0] % L.row_multiple(t->type) != 0) continue;
            if (t->nb[0] != type_traits(t->type).block_bytes || t->nb[1] != t->row_bytes()) continue;
            todo.push_back(t);
            layout_of.push_back(found);
            offset.push_back(total);
            total += (L.packed_bytes(t->type, t->ne[1], t->ne[0]) + 63) / 64 * 64;
        }
        if (todo.empty()) return nullptr;
        auto buf = std::make_unique<HostBuffer>(total);
        char* base = static_cast<char*>(buf->base());
        cpu::parallel_for(pool_, int64_t(todo.size()), pool_.size(), [&](int64_t i, int) {
            const Tensor* t = todo[size_t(i)];
            layout_of[size_t(i)]->repack(t->type, t->data, t->nb[1], t->ne[1], t->ne[0], base + offset[size_t(i)]);
            if (source_done) source_done(t->data, t->nbytes());
        });
        for (size_t i = 0; i < todo.size(); ++i) {
            todo[i]->data = base + offset[i];
            todo[i]->buffer = buf.get();
            todo[i]->flags |= layout_of[i]->flags;
        }
        return buf;
    }

    void compute_node(Tensor* node) {
        const OpFamily f = kernel_family(k_, *node);
        if (f == OpFamily::View) return;
        if (f != OpFamily::Other) check_storage(node);
        switch (f) {
            case OpFamily::MulMat: return k_.mul_mat(node, pool_, scratch_);
            case OpFamily::MulMatId: return k_.mul_mat_id(node, pool_, scratch_);
            case OpFamily::Elementwise: return k_.elementwise(node, pool_);
            case OpFamily::NormRopeSoftmax: return k_.norm_rope_softmax(node, pool_);
            case OpFamily::Copy: return k_.copy(node, pool_, scratch_);
            case OpFamily::Attention: return k_.attention(node, pool_);
            default: return ref::compute_node(node);
        }
    }

    // nodes[first] and the products after it that read the same activations (q, k and v of one input; gate
    // and up), up to the first other computing node, run as one group: one fork/join of the pool instead of
    // one per product, and the shared activation converted once. A decode step's products are short (tens
    // of microseconds), so the join and the activation conversion are a visible part of each. A product
    // joins only if it neither reads what an earlier member writes nor writes what a member reads (the
    // memory plan may reuse a buffer as soon as its last reader ran). Returns the last node index covered.
    size_t compute_mul_mat_group(const std::vector<Tensor*>& nodes, size_t first) {
        constexpr int kMaxGroup = 8;
        Tensor* group[kMaxGroup] = {nodes[first]};
        int count = 1;
        size_t last = first;
        for (size_t j = first + 1; j < nodes.size() && count < kMaxGroup; ++j) {
            Tensor* n = nodes[j];
            const OpFamily f = kernel_family(k_, *n);
            if (f == OpFamily::View) continue;  // computes nothing; stays where it is
            if (f != OpFamily::MulMat || n->src[1] != group[0]->src[1] || !k_.mul_mat_in_place(*n)) break;
            bool independent = true;
            for (int g = 0; g < count && independent; ++g)
                independent = !overlaps(*n, *group[g]->src[0]) && !overlaps(*n, *group[g]->src[1]) &&
                              !overlaps(*group[g], *n->src[0]);
            if (!independent) break;
            group[count++] = n;
            last = j;
        }
        for (int g = 0; g < count; ++g) check_storage(group[g]);
        k_.mul_mat_group(group, count, pool_, scratch_);
        return last;
    }

    // The bytes t's elements span: [first byte, one past the last), strides being non-negative.
    static std::pair<uintptr_t, uintptr_t> byte_span(const Tensor& t) {
        const auto lo = reinterpret_cast<uintptr_t>(t.data);
        if (t.nelements() == 0) return {lo, lo};
        size_t extent = t.row_bytes();
        for (int d = 1; d < kMaxDims; ++d) extent += size_t(t.ne[d] - 1) * t.nb[d];
        return {lo, lo + extent};
    }
    static bool overlaps(const Tensor& a, const Tensor& b) {
        const auto [a0, a1] = byte_span(a);
        const auto [b0, b1] = byte_span(b);
        return a0 < b1 && b0 < a1;
    }

    static void check_storage(const Tensor* node) {
        TESSERA_CHECK(node->data != nullptr, "cpu backend: %s '%s' has no storage", op_name(node->op),
                      node->name.c_str());
        for (const Tensor* s : node->src)
            TESSERA_CHECK(!s || s->data != nullptr, "cpu backend: %s '%s': source '%s' has no storage",
                          op_name(node->op), node->name.c_str(), s->name.c_str());
    }

    ThreadPool pool_;       // this backend's own threads: two models in one process never share them
    const cpu::CpuKernels& k_;  // this backend's level; tables are immutable
    cpu::Scratch scratch_;  // reused across nodes and calls; one backend serves one graph at a time
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) {
    return std::make_unique<CpuBackend>(options.threads, cpu::kernels_in_use(options.cpu_level));
}

}  // namespace tessera
