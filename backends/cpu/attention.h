// The cpu backend's fused attention (tiled online softmax). See core/ops.h for the op's contract.
#pragma once
#include "core/tensor.h"

namespace tessera::cpu {

void attention(Tensor* dst, int n_threads);

}  // namespace tessera::cpu
