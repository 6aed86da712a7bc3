// The one exception type library code throws. Never exit/abort on input.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

struct Error : std::runtime_error {
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// printf-style message builder, so checks read as one line.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

#define TESSERA_CHECK(cond, ...)                                   \
    do {                                                           \
        if (!(cond)) throw ::tessera::Error(::tessera::format(__VA_ARGS__)); \
    } while (0)

}  // namespace tessera
