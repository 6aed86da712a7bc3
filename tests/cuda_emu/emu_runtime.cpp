// The CUDA emulator behind tests/cuda_emu/*.h: kernel launches on cooperative fibers, the host API over
// host memory, and cuBLAS GEMMs as loops. See cuda_runtime.h for the model.
//
// A launch runs its blocks in order (x fastest). For each block every thread gets a fiber (ucontext) with
// its own stack; a scheduler on the calling thread resumes ready fibers in thread order (reversed on odd
// blocks) and each fiber runs until it waits at a barrier or returns. A barrier is released by the last
// thread to arrive, which then carries on; when no fiber is ready but some have not returned, the threads
// wait at barriers that can never complete, and the launch fails with a description instead of hanging.
#include <ucontext.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "cublas_v2.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#define TESSERA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TESSERA_EMU_ASAN 1
#endif
#endif
#ifdef TESSERA_EMU_ASAN
#include <dlfcn.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace tessera_emu {
namespace {

// Fiber stacks: kernels keep small register arrays, but unoptimised and sanitizer builds use more stack per
// frame than -O2; 256 KiB each is mapped lazily (untouched pages cost nothing).
constexpr size_t kStackBytes = 256 * 1024;
constexpr unsigned kMaxThreads = 1024;

#ifdef TESSERA_EMU_ASAN
// AddressSanitizer's swapcontext interceptor clears the shadow of the whole target stack on every switch
// (32 KiB of shadow per 256 KiB stack: minutes over a test run). The switches here are announced with
// __sanitizer_start/finish_switch_fiber and frames unwind normally (stacks abandoned by a failed launch
// are unpoisoned explicitly), so libc's own swapcontext is called.
using SwapFn = int (*)(ucontext_t*, const ucontext_t*);
SwapFn libc_swapcontext() {
    static const SwapFn fn = [] {
        void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        void* sym = libc ? dlsym(libc, "swapcontext") : nullptr;
        return sym ? reinterpret_cast<SwapFn>(sym) : &swapcontext;
    }();
    return fn;
}
#define TESSERA_EMU_SWAPCONTEXT(from, to) libc_swapcontext()(from, to)
#else
#define TESSERA_EMU_SWAPCONTEXT(from, to) swapcontext(from, to)
#endif

enum class State { Ready, AtSyncthreads, AtWarp, Done };

struct Fiber {
    ucontext_t ctx;
    State state = State::Done;
    void* fake_stack = nullptr;  // AddressSanitizer's bookkeeping across switches
};

struct Warp {
    unsigned arrived = 0;  // lanes waiting at the current warp barrier
    unsigned mask = 0;     // the mask they named
    bool exchange = false;  // shuffle (true) or __syncwarp (false)
    unsigned phase = 0;     // which slot set the current exchange writes (two, so a slot is never overwritten
                            // before every lane has read it: a lane reaches the next exchange only after)
    uint64_t slot[2][32] = {};
};

struct Engine {
    std::vector<Fiber> fibers{kMaxThreads};
    std::vector<char*> stacks;
    std::vector<Warp> warps;
    ucontext_t sched{};
    void* sched_fake_stack = nullptr;
    const void* sched_stack_bottom = nullptr;  // the scheduler's stack, learned at a fiber's first entry
    size_t sched_stack_size = 0;
    bool running = false;  // a launch is in progress
    unsigned n_threads = 0, live = 0, at_syncthreads = 0;
    int current = -1;
    dim3 block;
    const char* kernel_name = "";
    void (*thunk)(void*) = nullptr;
    void* closure = nullptr;
    bool failed = false;
    std::string failure;
    std::vector<unsigned char> smem;  // dynamic shared memory of the running block
    std::map<const void*, int> max_dyn_smem;
    std::map<std::string, long long> launches;
    long long gemms = 0;
    cudaError_t last_error = cudaSuccess;
    std::string last_message;
    size_t allocated = 0;
    std::map<void*, size_t> allocations;
};

Engine& engine() {
    static Engine e;
    return e;
}

char* stack_of(unsigned t) {
    Engine& e = engine();
    while (e.stacks.size() <= t) {
        void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("cuda emulator: cannot map a fiber stack");
        e.stacks.push_back(static_cast<char*>(p));
    }
    return e.stacks[t];
}

void set_thread_index(unsigned t) {
    const Engine& e = engine();
    threadIdx.x = t % e.block.x;
    threadIdx.y = (t / e.block.x) % e.block.y;
    threadIdx.z = t / (e.block.x * e.block.y);
}

// Fiber -> scheduler. Returns when the scheduler resumes this fiber.
void yield_to_scheduler() {
    Engine& e = engine();
    Fiber& f = e.fibers[size_t(e.current)];
#ifdef TESSERA_EMU_ASAN
    __sanitizer_start_switch_fiber(&f.fake_stack, e.sched_stack_bottom, e.sched_stack_size);
#endif
    TESSERA_EMU_SWAPCONTEXT(&f.ctx, &e.sched);
#ifdef TESSERA_EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

void release_syncthreads() {
    Engine& e = engine();
    for (unsigned t = 0; t < e.n_threads; ++t)
        if (e.fibers[t].state == State::AtSyncthreads) e.fibers[t].state = State::Ready;
    e.at_syncthreads = 0;
}

// A lane that is missing or has returned can never reach a warp barrier that names it.
void check_mask_lanes(unsigned warp, unsigned mask, const char* what) {
    Engine& e = engine();
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask & (1u << l))) continue;
        const unsigned t = warp * 32 + l;
        if (t >= e.n_threads) {
            std::string m = std::string(what) + ": the mask names lane " + std::to_string(l) + " of warp " +
                            std::to_string(warp) + ", which the block (" + std::to_string(e.n_threads) +
                            " threads) does not have";
            device_fault(m.c_str());
        }
        if (e.fibers[t].state == State::Done) {
            std::string m = std::string(what) + ": the mask names lane " + std::to_string(l) + " of warp " +
                            std::to_string(warp) + ", which has already returned";
            device_fault(m.c_str());
        }
    }
}

// The calling lane arrives at its warp's barrier; returns the phase of the exchange once all lanes of the
// mask have arrived.
unsigned warp_arrive(unsigned mask, bool exchange, uint64_t bits) {
    Engine& e = engine();
    if (!e.running) throw std::runtime_error("cuda emulator: a warp intrinsic outside a kernel");
    const unsigned t = unsigned(e.current), lane = t % 32, warp = t / 32;
    const char* what = exchange ? "warp shuffle" : "__syncwarp";
    if (!(mask & (1u << lane))) device_fault((std::string(what) + ": the calling lane is not in its mask").c_str());
    Warp& w = e.warps[warp];
    if (w.arrived != 0 && (w.mask != mask || w.exchange != exchange))
        device_fault((std::string(what) + ": lanes of one warp wait at different warp barriers (masks or "
                                          "intrinsics differ)")
                         .c_str());
    check_mask_lanes(warp, mask, what);
    w.mask = mask;
    w.exchange = exchange;
    const unsigned phase = w.phase;
    w.slot[phase][lane] = bits;
    w.arrived |= 1u << lane;
    if (w.arrived == mask) {  // the last lane: release the others and carry on
        for (unsigned l = 0; l < 32; ++l)
            if ((mask & (1u << l)) && l != lane) e.fibers[warp * 32 + l].state = State::Ready;
        w.arrived = 0;
        w.phase ^= 1;
    } else {
        e.fibers[t].state = State::AtWarp;
        yield_to_scheduler();
    }
    return phase;
}

void fiber_main() {
    Engine& e = engine();
#ifdef TESSERA_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &e.sched_stack_bottom, &e.sched_stack_size);
#endif
    e.thunk(e.closure);
    // The thread returned: it leaves __syncthreads' count, and must not be awaited by a warp barrier.
    const unsigned t = unsigned(e.current);
    e.fibers[t].state = State::Done;
    --e.live;
    Warp& w = e.warps[t / 32];
    if (w.arrived != 0 && (w.mask & (1u << (t % 32))))
        device_fault("a thread returned while lanes of its warp wait for it at a warp barrier");
    if (e.live > 0 && e.at_syncthreads == e.live) release_syncthreads();
#ifdef TESSERA_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, e.sched_stack_bottom, e.sched_stack_size);
#endif
    // returning resumes uc_link, the scheduler
}

std::string deadlock_report() {
    Engine& e = engine();
    unsigned at_sync = 0, at_warp = 0;
    for (unsigned t = 0; t < e.n_threads; ++t) {
        at_sync += e.fibers[t].state == State::AtSyncthreads;
        at_warp += e.fibers[t].state == State::AtWarp;
    }
    return "deadlock: " + std::to_string(at_sync) + " threads wait at __syncthreads and " + std::to_string(at_warp) +
           " at warp barriers, " + std::to_string(e.n_threads - e.live) + " have returned";
}

// Runs one block to completion (or failure).
void run_block(unsigned block_linear) {
    Engine& e = engine();
    e.live = e.n_threads;
    e.at_syncthreads = 0;
    for (Warp& w : e.warps) w = Warp{};
    std::fill(e.smem.begin(), e.smem.end(), 0xFF);
    for (unsigned t = 0; t < e.n_threads; ++t) {
        Fiber& f = e.fibers[t];
        f.state = State::Ready;
        f.fake_stack = nullptr;
        if (getcontext(&f.ctx) != 0) throw std::runtime_error("cuda emulator: getcontext failed");
        f.ctx.uc_stack.ss_sp = stack_of(t);
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &e.sched;
        makecontext(&f.ctx, fiber_main, 0);
    }
    const bool reverse = block_linear % 2 == 1;
    while (e.live > 0 && !e.failed) {
        bool ran = false;
        for (unsigned i = 0; i < e.n_threads && !e.failed; ++i) {
            const unsigned t = reverse ? e.n_threads - 1 - i : i;
            Fiber& f = e.fibers[t];
            if (f.state != State::Ready) continue;
            ran = true;
            e.current = int(t);
            set_thread_index(t);
#ifdef TESSERA_EMU_ASAN
            __sanitizer_start_switch_fiber(&e.sched_fake_stack, stack_of(t), kStackBytes);
#endif
            TESSERA_EMU_SWAPCONTEXT(&e.sched, &f.ctx);
#ifdef TESSERA_EMU_ASAN
            __sanitizer_finish_switch_fiber(e.sched_fake_stack, nullptr, nullptr);
#endif
        }
        if (!ran && e.live > 0 && !e.failed) {
            e.failed = true;
            e.failure = deadlock_report();
        }
    }
    e.current = -1;
}

}  // namespace

void launch(const char* name, const void* kernel, dim3 grid, dim3 block, size_t dyn_smem, void (*thunk)(void*),
            void* closure) {
    Engine& e = engine();
    if (e.running) throw std::runtime_error("cuda emulator: a kernel launched from inside a kernel");
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    auto config_error = [&](const std::string& why) {
        set_last_error(cudaErrorInvalidConfiguration, (std::string("launch of ") + name + ": " + why).c_str());
    };
    if (threads == 0 || threads > kMaxThreads || block.z > 64)
        return config_error("block of " + std::to_string(threads) + " threads");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
        return config_error("grid " + std::to_string(grid.x) + " x " + std::to_string(grid.y) + " x " +
                            std::to_string(grid.z));
    auto it = e.max_dyn_smem.find(kernel);
    const size_t smem_limit = std::max(kSmemDefault, it == e.max_dyn_smem.end() ? size_t(0) : size_t(it->second));
    if (dyn_smem > smem_limit)
        return config_error(std::to_string(dyn_smem) + " bytes of dynamic shared memory, the kernel may use " +
                            std::to_string(smem_limit) + " (cudaFuncSetAttribute raises it)");
    ++e.launches[name];
    static const bool trace = std::getenv("TESSERA_EMU_TRACE") != nullptr;  // for debugging a kernel by hand
    if (trace)
        std::fprintf(stderr, "emu launch %s grid (%u,%u,%u) block (%u,%u,%u) smem %zu\n", name, grid.x, grid.y, grid.z,
                     block.x, block.y, block.z, dyn_smem);

    e.running = true;
    e.failed = false;
    e.failure.clear();
    e.kernel_name = name;
    e.thunk = thunk;
    e.closure = closure;
    e.block = block;
    e.n_threads = unsigned(threads);
    e.warps.assign((e.n_threads + 31) / 32, Warp{});
    e.smem.assign(dyn_smem, 0xFF);
    blockDim = block;
    gridDim = grid;
    unsigned long long linear = 0;
    for (unsigned z = 0; z < grid.z && !e.failed; ++z)
        for (unsigned y = 0; y < grid.y && !e.failed; ++y)
            for (unsigned x = 0; x < grid.x && !e.failed; ++x, ++linear) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                run_block(unsigned(linear % 2));
                if (e.failed)
                    e.failure += " (block " + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) +
                                 ", thread " + std::to_string(threadIdx.x) + ")";
            }
    e.running = false;
    if (e.failed) {
#ifdef TESSERA_EMU_ASAN
        // abandoned fibers leave poisoned frames on their stacks
        for (unsigned t = 0; t < e.n_threads; ++t) __asan_unpoison_memory_region(stack_of(t), kStackBytes);
#endif
        set_last_error(cudaErrorLaunchFailure, (std::string("kernel ") + name + ": " + e.failure).c_str());
    }
}

unsigned char* dynamic_smem() {
    Engine& e = engine();
    return e.smem.empty() ? nullptr : e.smem.data();
}

void syncthreads() {
    Engine& e = engine();
    if (!e.running) throw std::runtime_error("cuda emulator: __syncthreads outside a kernel");
    Fiber& f = e.fibers[size_t(e.current)];
    ++e.at_syncthreads;
    f.state = State::AtSyncthreads;
    if (e.at_syncthreads == e.live)
        release_syncthreads();  // the last thread: everyone proceeds, this one first
    else
        yield_to_scheduler();
}

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src) {
    Engine& e = engine();
    const unsigned phase = warp_arrive(mask, true, bits);
    if (src < 0 || src >= 32 || !(mask & (1u << unsigned(src))))
        device_fault("warp shuffle: reads a lane outside its mask (undefined on the hardware)");
    return e.warps[unsigned(e.current) / 32].slot[phase][src];
}

void syncwarp(unsigned mask) { warp_arrive(mask, false, 0); }

int lane_id() {
    Engine& e = engine();
    if (!e.running) throw std::runtime_error("cuda emulator: a warp intrinsic outside a kernel");
    return e.current % 32;
}

void device_fault(const char* what) {
    Engine& e = engine();
    if (!e.running || e.current < 0) throw std::runtime_error(std::string("cuda emulator: ") + what);
    if (!e.failed) {
        e.failed = true;
        e.failure = what;
    }
    // This fiber is abandoned: the scheduler stops the launch and never resumes it.
    e.fibers[size_t(e.current)].state = State::AtWarp;
    yield_to_scheduler();
    std::abort();  // unreachable
}

void set_max_dynamic_smem(const void* kernel, int bytes) { engine().max_dyn_smem[kernel] = bytes; }

void set_last_error(cudaError_t err, const char* msg) {
    Engine& e = engine();
    e.last_error = err;
    e.last_message = msg;
}

cudaError_t take_last_error() {
    Engine& e = engine();
    const cudaError_t err = e.last_error;
    e.last_error = cudaSuccess;
    return err;
}

const char* error_string(cudaError_t err) {
    Engine& e = engine();
    if (err == cudaSuccess) return "no error";
    if (!e.last_message.empty()) return e.last_message.c_str();
    return "emulated CUDA error";
}

long long launches_of(const char* prefix) {
    long long n = 0;
    const std::string p(prefix);
    for (const auto& [name, count] : engine().launches)
        if (name.compare(0, p.size(), p) == 0) n += count;
    return n;
}

long long total_launches() {
    long long n = 0;
    for (const auto& kv : engine().launches) n += kv.second;
    return n;
}

long long gemm_calls() { return engine().gemms; }
void note_gemm() { ++engine().gemms; }
void reset_counters() {
    engine().launches.clear();
    engine().gemms = 0;
}

}  // namespace tessera_emu

// ---------------------------------------------------------------- host API

using tessera_emu::engine;

namespace {
cudaError_t fail(cudaError_t err, const char* msg) {
    tessera_emu::set_last_error(err, msg);
    return err;
}
}  // namespace

cudaError_t cudaGetLastError() { return tessera_emu::take_last_error(); }
cudaError_t cudaPeekAtLastError() { return engine().last_error; }
const char* cudaGetErrorString(cudaError_t err) { return tessera_emu::error_string(err); }
const char* cudaGetErrorName(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}
cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice: no such device");
}
cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties: no such device");
    *prop = cudaDeviceProp{};
    std::snprintf(prop->name, sizeof prop->name, "tessera CPU emulation of a CUDA device");
    prop->totalGlobalMem = tessera_emu::kDeviceMemory;
    prop->sharedMemPerBlock = tessera_emu::kSmemDefault;
    prop->sharedMemPerBlockOptin = tessera_emu::kSmemOptin;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxGridSize[0] = 0x7fffffff;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = tessera_emu::kSmCount;
    prop->major = 9;
    prop->minor = 0;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: no such device");
    switch (attr) {
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = int(tessera_emu::kSmemDefault); return cudaSuccess;
        case cudaDevAttrMultiProcessorCount: *value = tessera_emu::kSmCount; return cudaSuccess;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(tessera_emu::kSmemOptin); return cudaSuccess;
    }
    return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// Device allocations are 256-byte aligned and rounded up to 256 bytes, as cudaMalloc's are.
cudaError_t cudaMalloc(void** ptr, size_t bytes) {
    auto& e = engine();
    const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
    if (e.allocated + rounded > tessera_emu::kDeviceMemory) {
        *ptr = nullptr;
        return fail(cudaErrorMemoryAllocation, "out of memory");
    }
    *ptr = std::aligned_alloc(256, rounded);
    if (!*ptr) return fail(cudaErrorMemoryAllocation, "out of memory");
    e.allocated += rounded;
    e.allocations[*ptr] = rounded;
    return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
    if (!ptr) return cudaSuccess;
    auto& e = engine();
    auto it = e.allocations.find(ptr);
    if (it == e.allocations.end()) return fail(cudaErrorInvalidValue, "cudaFree: not a device allocation");
    e.allocated -= it->second;
    e.allocations.erase(it);
    std::free(ptr);
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaFreeHost(void* ptr) { return cudaFree(ptr); }
cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned) {
    *device_ptr = host_ptr;  // mapped pinned memory: the device sees it at the same address
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *total_bytes = tessera_emu::kDeviceMemory;
    *free_bytes = tessera_emu::kDeviceMemory - engine().allocated;
    return cudaSuccess;
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
    if (bytes) std::memset(ptr, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) { return cudaMemset(ptr, value, bytes); }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
    if (bytes) std::memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
    if ((height > 1 && (width > dpitch || width > spitch)))
        return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width exceeds a pitch");
    for (size_t r = 0; r < height; ++r)
        std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
    static int tag;
    *stream = reinterpret_cast<cudaStream_t>(&tag);  // every call is synchronous: a stream is only a name
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// ---------------------------------------------------------------- cuBLAS

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    static int tag;
    *handle = reinterpret_cast<cublasHandle_t>(&tag);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

namespace {
double load_elem(const void* base, cudaDataType t, long long i) {
    if (t == CUDA_R_32F) return static_cast<const float*>(base)[i];
    if (t == CUDA_R_16F) return __half2float(static_cast<const __half*>(base)[i]);
    uint32_t u = uint32_t(static_cast<const uint16_t*>(base)[i]) << 16;  // bf16: the top half of an f32
    return __uint_as_float(u);
}
bool known_type(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }
}  // namespace

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType a_type,
                                          int lda, long long stride_a, const void* B, cudaDataType b_type, int ldb,
                                          long long stride_b, const void* beta, void* C, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch_count, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16F &&
        compute != CUBLAS_COMPUTE_32F_FAST_TF32)
        return CUBLAS_STATUS_NOT_SUPPORTED;  // alpha / beta would be halves
    if (!known_type(a_type) || !known_type(b_type) || (c_type != CUDA_R_32F && c_type != CUDA_R_16F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || batch_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
    // Leading dimensions as cuBLAS checks them: at least the rows of the stored (untransposed) matrix.
    if (lda < std::max(1, transa == CUBLAS_OP_N ? m : k) || ldb < std::max(1, transb == CUBLAS_OP_N ? k : n) ||
        ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    tessera_emu::note_gemm();
    const double al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    for (int b = 0; b < batch_count; ++b)
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                double s = 0;
                for (int l = 0; l < k; ++l) {
                    const long long ai = transa == CUBLAS_OP_N ? i + 1ll * l * lda : l + 1ll * i * lda;
                    const long long bi = transb == CUBLAS_OP_N ? l + 1ll * j * ldb : j + 1ll * l * ldb;
                    s += load_elem(A, a_type, b * stride_a + ai) * load_elem(B, b_type, b * stride_b + bi);
                }
                const long long ci = b * stride_c + i + 1ll * j * ldc;
                // beta == 0: C is write-only (it may hold garbage, even NaN), as in cuBLAS
                const double old = be == 0.0 ? 0.0 : load_elem(C, c_type, ci);
                const double r = al * s + (be == 0.0 ? 0.0 : be * old);
                if (c_type == CUDA_R_32F)
                    static_cast<float*>(C)[ci] = float(r);
                else
                    static_cast<__half*>(C)[ci] = __float2half_rn(float(r));
            }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType a_type, int lda, const void* B,
                            cudaDataType b_type, int ldb, const void* beta, void* C, cudaDataType c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, a_type, lda, 0, B, b_type, ldb, 0,
                                      beta, C, c_type, ldc, 0, 1, compute, algo);
}
