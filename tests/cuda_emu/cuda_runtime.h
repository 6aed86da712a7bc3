// CPU emulation of the CUDA runtime surface the cuda backend uses, so its kernels and host code compile with
// g++ and run in tests without a GPU (tests/test_cuda_emulated.cpp). This directory goes on the include path
// ahead of the toolkit, so `#include <cuda_runtime.h>` in backends/cuda finds this file.
//
// Model: "device" memory is host memory; every call is synchronous (streams are tags). A launch runs the
// blocks of its grid one after another; the threads of a block are cooperative fibers on the calling OS
// thread (emu_runtime.cpp), switched only at __syncthreads and warp intrinsics, so a run is deterministic.
// Barriers follow the hardware's rules and report misuse instead of hanging: __syncthreads waits for the
// threads still running (exited ones drop out), a warp shuffle waits for exactly the lanes in its mask,
// and a barrier nobody can complete (threads waiting at different barriers, a mask naming an exited or
// missing lane) fails the launch with a message that cudaGetLastError() then reports.
// Blocks alternate thread order (forward / reverse) so a missing barrier is likely to show as a wrong result.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// One OS thread runs one block at a time, so a block's static shared memory is a function-local static.
#define __shared__ static

// ---- vector and dimension types ----
struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

constexpr int warpSize = 32;

// The built-in variables: set by the emulator before it resumes a thread (one emulated launch at a time).
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

// ---- runtime types ----
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;
typedef struct CUstream_st* cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlock = 8, cudaDevAttrMultiProcessorCount = 16,
                      cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaHostAllocDefault = 0, cudaHostAllocPortable = 1, cudaHostAllocMapped = 2,
                   cudaHostAllocWriteCombined = 4;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int warpSize;
    int maxThreadsPerBlock;
    int maxGridSize[3];
    int multiProcessorCount;
    int major, minor;
};

// ---- the emulator (emu_runtime.cpp) ----
namespace tessera_emu {

// The emulated device: an H100/H200-like part (compute capability 9.0, 132 SMs, 227 KiB opt-in shared
// memory per block, 48 KiB without opting in).
constexpr int kSmCount = 132;
constexpr size_t kSmemDefault = 48 * 1024;
constexpr size_t kSmemOptin = 227 * 1024;
constexpr size_t kDeviceMemory = size_t(16) << 30;

// Runs a kernel: thunk(closure) is called once per thread of every block.
void launch(const char* name, const void* kernel, dim3 grid, dim3 block, size_t dyn_smem, void (*thunk)(void*),
            void* closure);
// The running block's dynamic shared memory (filled with 0xFF bytes, NaN as floats, before each block).
unsigned char* dynamic_smem();
void syncthreads();
// Warp exchange: this lane offers `bits`, waits for the lanes of `mask`, and gets lane `src`'s offer.
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src);
void syncwarp(unsigned mask);
int lane_id();
// Fails the running launch (a device fault: misaligned load, bad shuffle) with a message.
[[noreturn]] void device_fault(const char* what);
// Records cudaFuncSetAttribute(MaxDynamicSharedMemorySize) for a kernel.
void set_max_dynamic_smem(const void* kernel, int bytes);
void set_last_error(cudaError_t err, const char* msg);
cudaError_t take_last_error();
const char* error_string(cudaError_t err);

// Counters the test reads to prove a node ran on a kernel (not on the host fallback).
long long launches_of(const char* name_prefix);  // launches whose kernel expression starts with the prefix
long long total_launches();
long long gemm_calls();
void note_gemm();
void reset_counters();

template <class... P>
struct Launch {
    const char* name;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;
    // Arguments are converted to the kernel's parameter types once, as a real launch copies them; each
    // emulated thread then gets its own copy (parameters are by value).
    template <class... A>
    void operator()(A&&... args) const {
        std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
        struct Closure {
            void (*kernel)(P...);
            std::tuple<std::decay_t<P>...>* params;
        } closure{kernel, &params};
        auto thunk = [](void* c) {
            auto* cl = static_cast<Closure*>(c);
            std::apply(cl->kernel, *cl->params);
        };
        launch(name, reinterpret_cast<const void*>(kernel), grid, block, smem, thunk, &closure);
    }
};

template <class... P>
Launch<P...> make_launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t) {
    return Launch<P...>{name, kernel, grid, block, smem};
}

}  // namespace tessera_emu

// The backend's launch and dynamic-shared-memory macros (nvcc spellings are in cuda_common.cuh).
#define TESSERA_LAUNCH(grid, block, smem, stream, ...) \
    ::tessera_emu::make_launch(#__VA_ARGS__, __VA_ARGS__, grid, block, smem, stream)
#define TESSERA_DYNAMIC_SHARED(type, name) type* const name = reinterpret_cast<type*>(::tessera_emu::dynamic_smem())

// ---- device intrinsics ----
inline void __syncthreads() { tessera_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { tessera_emu::syncwarp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace tessera_emu {
template <class T>
T shfl(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "emulated shuffles carry up to 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = warp_exchange(mask, bits, src);
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}
}  // namespace tessera_emu

// Lanes are grouped in segments of `width`; a source outside the caller's segment reads its own value.
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    const int lane = tessera_emu::lane_id();
    return tessera_emu::shfl(mask, v, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = tessera_emu::lane_id();
    const int src = lane ^ lane_mask;
    return tessera_emu::shfl(mask, v, src >= ((lane & ~(width - 1)) + width) ? lane : src);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = tessera_emu::lane_id();
    const int src = lane + int(delta);
    return tessera_emu::shfl(mask, v, src >= ((lane & ~(width - 1)) + width) ? lane : src);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = tessera_emu::lane_id();
    const int src = lane - int(delta);
    return tessera_emu::shfl(mask, v, src < (lane & ~(width - 1)) ? lane : src);
}

// __ldg: a read-only load; the hardware faults on a misaligned address, so the emulator does too.
template <class T>
T __ldg(const T* p) {
    if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) tessera_emu::device_fault("__ldg: misaligned address");
    return *p;
}

// One OS thread runs all emulated threads and never switches inside these: they are atomic.
inline int atomicCAS(int* p, int cmp, int val) {
    const int old = *p;
    if (old == cmp) *p = val;
    return old;
}
inline unsigned atomicCAS(unsigned* p, unsigned cmp, unsigned val) {
    const unsigned old = *p;
    if (old == cmp) *p = val;
    return old;
}
template <class T>
T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <class T>
T atomicMax(T* p, T v) {
    const T old = *p;
    if (v > old) *p = v;
    return old;
}
template <class T>
T atomicMin(T* p, T v) {
    const T old = *p;
    if (v < old) *p = v;
    return old;
}
template <class T>
T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}
// Round-to-nearest single operations: the emulated sources are compiled without FP contraction, so a
// plain operator rounds once, as these intrinsics promise.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

// CUDA's overloaded min / max for device code (integers and floats alike).
template <class T>
inline T min(T a, T b) {
    return b < a ? b : a;
}
template <class T>
inline T max(T a, T b) {
    return a < b ? b : a;
}

// ---- host API ----
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned flags);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

// The toolkit's typed conveniences.
template <class T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
template <class T>
cudaError_t cudaHostAlloc(T** ptr, size_t bytes, unsigned flags) {
    return cudaHostAlloc(reinterpret_cast<void**>(ptr), bytes, flags);
}
template <class T>
cudaError_t cudaHostGetDevicePointer(T** device_ptr, void* host_ptr, unsigned flags) {
    return cudaHostGetDevicePointer(reinterpret_cast<void**>(device_ptr), host_ptr, flags);
}

template <class T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
    if (value < 0 || size_t(value) > tessera_emu::kSmemOptin) {
        tessera_emu::set_last_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: more shared memory than the device has");
        return cudaErrorInvalidValue;
    }
    tessera_emu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value);
    return cudaSuccess;
}
