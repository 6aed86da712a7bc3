// TESSERA_HOST_DEVICE marks a function compiled for the host and, under nvcc, for the device too. The
// math that several backends must agree on bit for bit (f16 conversion in core/half.h, YaRN's ramp in
// core/rope_yarn.h) is written once, in headers, with it.
#pragma once

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__ inline
#else
#define TESSERA_HOST_DEVICE inline
#endif
