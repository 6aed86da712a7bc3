// Context: owns the tensors of one graph-building session.
// Graph: the nodes reachable from the outputs, in execution order.
// Memory planner: places intermediates in one buffer by lifetime.
#pragma once
#include <deque>
#include <memory>
#include <initializer_list>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"

namespace tessera {

class Context {
public:
    Context() = default;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // A leaf tensor with contiguous strides and no storage yet.
    Tensor* new_tensor(DType type, std::initializer_list<int64_t> ne, const std::string& name = "");
    Tensor* new_tensor(DType type, const int64_t ne[kMaxDims], const std::string& name = "");
    // A node: op and sources set, contiguous output of the given type and shape.
    Tensor* new_node(Op op, DType type, const int64_t ne[kMaxDims], std::initializer_list<Tensor*> srcs);

    size_t size() const { return tensors_.size(); }
    // Finds a tensor by name (first match) or returns null.
    Tensor* find(const std::string& name);

private:
    std::deque<Tensor> tensors_;  // deque: addresses stay valid as it grows
};

class Graph {
public:
    // Adds t and everything it depends on, sources first. Call it in the order
    // side effects must happen (e.g. the cache writes before the attention that reads them).
    void expand(Tensor* t);
    // Adds the node t alone, without its sources, which must be computed by then: for schedulers that
    // run one graph's nodes in segments on different backends.
    void append(Tensor* t);

    const std::vector<Tensor*>& nodes() const { return nodes_; }
    const std::vector<Tensor*>& leafs() const { return leafs_; }

private:
    std::vector<Tensor*> nodes_;  // op != None, in execution order
    std::vector<Tensor*> leafs_;  // op == None
    std::unordered_set<const Tensor*> visited_;
};

class Buffer;

struct MemoryPlan {
    struct Placement {
        Tensor* tensor;
        size_t offset;
    };
    std::vector<Placement> placements;  // intermediates that need storage
    size_t peak_bytes = 0;              // the one buffer's size
    size_t unplanned_bytes = 0;         // what one buffer per intermediate would need: the saving's yardstick
};

// Plans storage for every node that owns storage (not views, not cpy) and has none yet.
// A tensor lives from its node until its last reader; kFlagOutput tensors and the
// last node live to the end. Offsets are multiples of `alignment`.
MemoryPlan plan_memory(const Graph& graph, size_t alignment = 64);

// Points the planned tensors into `buffer` and resolves every view's data from its source.
void apply_memory_plan(const Graph& graph, const MemoryPlan& plan, Buffer& buffer);

// Resolves data pointers of views whose sources have storage (done by apply_memory_plan too).
void resolve_views(const Graph& graph);

}  // namespace tessera
