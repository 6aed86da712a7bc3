// PLACEHOLDER while the foundation lands: the cpu backend delegates to the reference ops.
#include "backends/host_backend.h"
#include "backends/reference/reference_ops.h"
#include "backends/registry.h"

namespace tessera {

namespace {

class CpuBackend final : public HostBackendBase {
public:
    explicit CpuBackend(int threads) : threads_(threads > 0 ? threads : physical_cores()) {}
    std::string name() const override { return "cpu"; }
    bool supports(const Tensor& node) const override { return ref::supports(node); }
    void compute(const Graph& graph) override {
        for (Tensor* node : graph.nodes())
            if (!op_is_view(node->op)) ref::compute_node(node);
    }
    void set_threads(int threads) override { threads_ = threads > 0 ? threads : physical_cores(); }
    int threads() const override { return threads_; }

private:
    int threads_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) {
    return std::make_unique<CpuBackend>(options.threads);
}

}  // namespace tessera
