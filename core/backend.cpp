#include "core/backend.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include <sys/mman.h>

#include "core/error.h"

namespace tessera {

HostBuffer::HostBuffer(size_t size) : size_(size), owned_(true) {
    // Big buffers (the KV cache, prefill graphs) are streamed through at decode: on 2 MiB pages the TLB
    // covers them. The advice must come before the first touch (the memset) to get huge pages at all.
    constexpr size_t kHugePage = size_t(2) << 20;
    const bool huge = size >= 2 * kHugePage;
    const size_t align = huge ? kHugePage : 64;
    const size_t rounded = (std::max<size_t>(size, 1) + align - 1) / align * align;
    base_ = std::aligned_alloc(align, rounded);
    TESSERA_CHECK_AS(OutOfMemory, base_ != nullptr, "out of host memory allocating %zu bytes", size);
#ifdef MADV_HUGEPAGE
    if (huge) madvise(base_, rounded, MADV_HUGEPAGE);  // advice only: without huge pages it still works
#endif
    std::memset(base_, 0, rounded);
}

HostBuffer::HostBuffer(void* borrowed, size_t size) : base_(borrowed), size_(size), owned_(false) {}

HostBuffer::~HostBuffer() {
    if (owned_) std::free(base_);
}

std::unique_ptr<Buffer> allocate_graph(const Graph& graph, Backend& backend, size_t* peak_bytes) {
    MemoryPlan plan = plan_memory(graph);
    auto buffer = backend.alloc_buffer(plan.peak_bytes);
    apply_memory_plan(graph, plan, *buffer);
    if (peak_bytes) *peak_bytes = plan.peak_bytes;
    return buffer;
}

int physical_cores() {
    // Count distinct (package, core) pairs from /proc/cpuinfo; fall back to hardware_concurrency.
    std::ifstream in("/proc/cpuinfo");
    std::set<std::pair<int, int>> cores;
    std::string line;
    int phys = 0;
    while (std::getline(in, line)) {
        auto value = [&]() { return std::atoi(line.c_str() + line.find(':') + 1); };
        if (line.rfind("physical id", 0) == 0) phys = value();
        if (line.rfind("core id", 0) == 0) cores.insert({phys, value()});
    }
    if (!cores.empty()) return int(cores.size());
    const unsigned n = std::thread::hardware_concurrency();
    return n ? int(n) : 1;
}

}  // namespace tessera
