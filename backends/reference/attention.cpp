// PLACEHOLDER: the reference attention comes with the attention op.
#include "backends/reference/reference_ops.h"
#include "core/error.h"

namespace tessera::ref {
void attention(Tensor* dst) { throw Error("reference attention not implemented yet"); }
}  // namespace tessera::ref
