// PLACEHOLDER while the foundation lands: quant conversions throw until implemented.
#include "core/quant.h"

#include "core/error.h"

namespace tessera {

#define TESSERA_QUANT_TODO(T)                                                                          \
    void dequantize_row_##T(const void*, float*, int64_t) { throw Error("dequantize " #T ": not implemented"); } \
    void quantize_row_##T(const float*, void*, int64_t) { throw Error("quantize " #T ": not implemented"); }
TESSERA_QUANT_TODO(q4_0)
TESSERA_QUANT_TODO(q4_1)
TESSERA_QUANT_TODO(q5_0)
TESSERA_QUANT_TODO(q5_1)
TESSERA_QUANT_TODO(q8_0)
TESSERA_QUANT_TODO(q8_1)
TESSERA_QUANT_TODO(q2_K)
TESSERA_QUANT_TODO(q3_K)
TESSERA_QUANT_TODO(q4_K)
TESSERA_QUANT_TODO(q5_K)
TESSERA_QUANT_TODO(q6_K)
TESSERA_QUANT_TODO(q8_K)

}  // namespace tessera
