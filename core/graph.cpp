#include "core/graph.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "core/backend.h"
#include "core/error.h"

namespace tessera {

Tensor* Context::new_tensor(DType type, std::initializer_list<int64_t> ne, const std::string& name) {
    TESSERA_CHECK(ne.size() >= 1 && ne.size() <= kMaxDims, "tensor '%s': %zu dims (1..4 allowed)", name.c_str(),
                  ne.size());
    int64_t dims[kMaxDims] = {1, 1, 1, 1};
    int i = 0;
    for (int64_t n : ne) dims[i++] = n;
    return new_tensor(type, dims, name);
}

Tensor* Context::new_tensor(DType type, const int64_t ne[kMaxDims], const std::string& name) {
    for (int i = 0; i < kMaxDims; ++i)
        TESSERA_CHECK(ne[i] >= 0, "tensor '%s': negative dim ne[%d] = %lld", name.c_str(), i, (long long)ne[i]);
    Tensor& t = tensors_.emplace_back();
    t.type = type;
    for (int i = 0; i < kMaxDims; ++i) t.ne[i] = ne[i];
    t.name = name;
    set_contiguous_strides(t);
    return &t;
}

Tensor* Context::new_node(Op op, DType type, const int64_t ne[kMaxDims], std::initializer_list<Tensor*> srcs) {
    TESSERA_CHECK(srcs.size() <= kMaxSrc, "%s: too many sources", op_name(op));
    Tensor* t = new_tensor(type, ne);
    t->op = op;
    int i = 0;
    for (Tensor* s : srcs) t->src[i++] = s;
    return t;
}

Tensor* Context::find(const std::string& name) {
    for (auto& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

void Graph::append(Tensor* t) {
    if (!t || visited_.count(t)) return;
    visited_.insert(t);
    (t->op == Op::None ? leafs_ : nodes_).push_back(t);
}

void Graph::expand(Tensor* root) {
    // Iterative post-order DFS: sources before the node, each tensor once.
    struct Frame {
        Tensor* t;
        int next_src;
    };
    if (!root || visited_.count(root)) return;
    std::vector<Frame> stack{{root, 0}};
    visited_.insert(root);
    while (!stack.empty()) {
        Frame& f = stack.back();
        Tensor* t = f.t;
        // Views, cpy and set_rows depend on view_src too (its storage must exist first).
        Tensor* next = nullptr;
        while (f.next_src <= kMaxSrc && !next) {
            Tensor* cand = f.next_src < kMaxSrc ? t->src[f.next_src] : t->view_src;
            ++f.next_src;
            if (cand && !visited_.count(cand)) next = cand;
        }
        if (next) {
            visited_.insert(next);
            stack.push_back({next, 0});
            continue;
        }
        (t->op == Op::None ? leafs_ : nodes_).push_back(t);
        stack.pop_back();
    }
}

namespace {

bool owns_storage(const Tensor* t) {
    return t->op != Op::None && !op_is_view(t->op) && t->op != Op::Cpy && t->op != Op::SetRows;
}

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// The tensor whose storage a read of t touches.
const Tensor* storage_of(const Tensor* t) {
    while (t->view_src) t = t->view_src;
    return t;
}

}  // namespace

MemoryPlan plan_memory(const Graph& graph, size_t alignment) {
    TESSERA_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "alignment %zu is not a power of two",
                  alignment);
    const auto& nodes = graph.nodes();
    const size_t n = nodes.size();

    // Last reader of each storage-owning tensor.
    std::unordered_map<const Tensor*, size_t> last_use;
    for (size_t i = 0; i < n; ++i) {
        const Tensor* t = nodes[i];
        last_use[storage_of(t)] = std::max(last_use[storage_of(t)], i);
        for (const Tensor* s : t->src)
            if (s) {
                size_t& lu = last_use[storage_of(s)];
                lu = std::max(lu, i);
            }
    }

    MemoryPlan plan;
    std::map<size_t, size_t> free_blocks;  // offset -> size
    size_t end = 0;
    std::unordered_map<const Tensor*, std::pair<size_t, size_t>> placed;  // tensor -> (offset, size)
    std::vector<std::vector<const Tensor*>> frees_at(n);

    auto release = [&](size_t off, size_t size) {
        auto it = free_blocks.emplace(off, size).first;
        auto next = std::next(it);
        if (next != free_blocks.end() && it->first + it->second == next->first) {
            it->second += next->second;
            free_blocks.erase(next);
        }
        if (it != free_blocks.begin()) {
            auto prev = std::prev(it);
            if (prev->first + prev->second == it->first) {
                prev->second += it->second;
                free_blocks.erase(it);
            }
        }
    };

    for (size_t i = 0; i < n; ++i) {
        Tensor* t = nodes[i];
        if (owns_storage(t) && t->data == nullptr) {
            const size_t size = align_up(std::max<size_t>(t->nbytes(), 1), alignment);
            plan.unplanned_bytes += size;
            // Best fit among free blocks, else grow the end.
            auto best = free_blocks.end();
            for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
                if (it->second >= size && (best == free_blocks.end() || it->second < best->second)) best = it;
            size_t off;
            if (best != free_blocks.end()) {
                off = best->first;
                const size_t rest = best->second - size;
                free_blocks.erase(best);
                if (rest) free_blocks.emplace(off + size, rest);
            } else {
                off = end;
                end += size;
            }
            plan.placements.push_back({t, off});
            placed[t] = {off, size};
            const bool keep = (t->flags & kFlagOutput) || i + 1 == n;
            if (!keep) frees_at[last_use[t]].push_back(t);
        }
        for (const Tensor* dead : frees_at[i]) release(placed[dead].first, placed[dead].second);
    }
    plan.peak_bytes = end;
    return plan;
}

void resolve_views(const Graph& graph) {
    for (Tensor* t : graph.nodes()) {
        if (!t->view_src) continue;
        const Tensor* src = t->view_src;
        TESSERA_CHECK(src->data != nullptr, "%s '%s': its source '%s' has no storage", op_name(t->op),
                      t->name.c_str(), src->name.c_str());
        t->buffer = src->buffer;
        t->data = static_cast<char*>(src->data) + t->view_offset;
    }
}

void apply_memory_plan(const Graph& graph, const MemoryPlan& plan, Buffer& buffer) {
    TESSERA_CHECK(buffer.size() >= plan.peak_bytes, "buffer of %zu bytes is smaller than the plan's %zu",
                  buffer.size(), plan.peak_bytes);
    for (const auto& p : plan.placements) {
        p.tensor->buffer = &buffer;
        p.tensor->data = static_cast<char*>(buffer.base()) + p.offset;
    }
    resolve_views(graph);
}

}  // namespace tessera
