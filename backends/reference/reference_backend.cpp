#include "backends/host_backend.h"
#include "backends/reference/reference_ops.h"
#include "backends/registry.h"

namespace tessera {

namespace {

class ReferenceBackend final : public HostBackendBase {
public:
    std::string name() const override { return "reference"; }
    bool supports(const Tensor& node) const override { return ref::supports(node); }
    void compute(const Graph& graph) override {
        for (Tensor* node : graph.nodes())
            if (!op_is_view(node->op)) ref::compute_node(node);
    }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend(const BackendOptions&) { return std::make_unique<ReferenceBackend>(); }

}  // namespace tessera
