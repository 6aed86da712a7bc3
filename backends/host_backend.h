// Shared plumbing of the backends that compute in host memory (reference, cpu):
// buffers are HostBuffers and tensor copies are memcpy.
#pragma once
#include <cstring>

#include "core/backend.h"
#include "core/error.h"

namespace tessera {

class HostBackendBase : public Backend {
public:
    bool is_host() const override { return true; }
    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override { return std::make_unique<HostBuffer>(bytes); }
    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override {
        TESSERA_CHECK(t.data != nullptr, "set_tensor '%s': tensor has no storage", t.name.c_str());
        TESSERA_CHECK(offset + size <= t.nbytes(), "set_tensor '%s': %zu bytes at %zu exceed its %zu", t.name.c_str(),
                      size, offset, t.nbytes());
        std::memcpy(static_cast<char*>(t.data) + offset, src, size);
    }
    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override {
        TESSERA_CHECK(t.data != nullptr, "get_tensor '%s': tensor has no storage", t.name.c_str());
        TESSERA_CHECK(offset + size <= t.nbytes(), "get_tensor '%s': %zu bytes at %zu exceed its %zu", t.name.c_str(),
                      size, offset, t.nbytes());
        std::memcpy(dst, static_cast<const char*>(t.data) + offset, size);
    }
};

}  // namespace tessera
