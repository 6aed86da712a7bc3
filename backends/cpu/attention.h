// The cpu backend's fused attention (tiled online softmax). See core/ops.h for the op's contract.
#pragma once
#include "backends/cpu/kernel_level.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Runs on up to pool.size() threads.
void attention(Tensor* dst, ThreadPool& pool);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
