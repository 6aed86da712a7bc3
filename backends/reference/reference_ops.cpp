// PLACEHOLDER while the foundation lands: every op is reported unsupported.
#include "backends/reference/reference_ops.h"

#include "core/error.h"

namespace tessera::ref {

bool supports(const Tensor& node) { return false; }

void compute_node(Tensor* node) {
    throw Error(std::string("reference backend: op ") + op_name(node->op) + " not implemented yet");
}

}  // namespace tessera::ref
