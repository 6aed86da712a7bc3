// The families the fast backends group their kernels by (one kernel file each): one list, so the cpu and
// cuda backends agree on which ops an elementwise or norm kernel is asked about.
#pragma once
#include "core/tensor.h"

namespace tessera {

enum class OpFamily { View, MulMat, MulMatId, Elementwise, NormRopeSoftmax, Copy, Attention, Other };

inline OpFamily op_family(Op op) {
    if (op_is_view(op)) return OpFamily::View;
    switch (op) {
        case Op::MulMat: return OpFamily::MulMat;
        case Op::MulMatId: return OpFamily::MulMatId;
        case Op::Add:
        case Op::Mul:
        case Op::Div:
        case Op::Scale:
        case Op::Silu:
        case Op::Gelu:
        case Op::GeluErf:
        case Op::Sigmoid:
        case Op::Softcap:
        case Op::SwiGlu:
        case Op::GeGlu:
        case Op::SwiGluClamped: return OpFamily::Elementwise;
        case Op::RmsNorm:
        case Op::Norm:
        case Op::Rope:
        case Op::SoftMax: return OpFamily::NormRopeSoftmax;
        case Op::GetRows:
        case Op::SetRows:
        case Op::Cont:
        case Op::Cpy: return OpFamily::Copy;
        case Op::Attention: return OpFamily::Attention;
        default: return OpFamily::Other;
    }
}

}  // namespace tessera
