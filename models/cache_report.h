// A one-paragraph account of a KV cache, split by layer kind, for the CLI to print:
//   full layers (one slot per position), window rings (a fixed number of slots), MLA latent rows
//   (beside what per-head K and V would need for the same heads).
#pragma once
#include <string>

#include "models/kv_cache.h"
#include "models/model.h"

namespace tessera {

std::string describe_kv_cache(const KVCache& cache, const HParams& hp);

}  // namespace tessera
