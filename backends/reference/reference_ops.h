// The reference backend's op implementations: scalar, obviously correct,
// double accumulation where it matters. The oracle every fast backend is
// tested against; never "fix" it to match a fast path.
#pragma once
#include "core/tensor.h"

namespace tessera::ref {

bool supports(const Tensor& node);
// Computes one node into its (already allocated) storage. Throws Error for an
// unsupported op or type, or bad data (a row id out of range), naming the node.
void compute_node(Tensor* node);

// Attention lives in its own file (attention.cpp).
void attention(Tensor* dst);

}  // namespace tessera::ref
