#include "core/temp_files.h"

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>

namespace tessera {

namespace {

// Fixed storage, so that the signal handler neither allocates nor follows pointers that may be freed.
// A slot's path is written before its flag is set (release) and read only after the flag is seen (acquire).
constexpr int kSlots = 16;
struct Slot {
    std::atomic<int> state{0};  // 0 free, 1 being filled or emptied, 2 holds a path
    char path[PATH_MAX];
};
Slot g_slots[kSlots];

}  // namespace

TempFileRegistration::TempFileRegistration(const char* path) {
    const size_t n = std::strlen(path);
    if (n >= PATH_MAX) return;
    for (int i = 0; i < kSlots; ++i) {
        int expected = 0;
        if (!g_slots[i].state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
        std::memcpy(g_slots[i].path, path, n + 1);
        g_slots[i].state.store(2, std::memory_order_release);
        slot_ = i;
        return;
    }
}

TempFileRegistration::~TempFileRegistration() {
    if (slot_ >= 0) g_slots[slot_].state.store(0, std::memory_order_release);
}

void remove_registered_temp_files() noexcept {
    for (auto& slot : g_slots)
        if (slot.state.load(std::memory_order_acquire) == 2) ::unlink(slot.path);
}

}  // namespace tessera
