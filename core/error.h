// The one exception type library code throws. Never exit/abort on input.
//
// An error carries its status from where it is raised: what kind of failure it is. The C API hands the
// status to the caller as its code (tessera_status) without reading the message.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tessera {

enum class Status : uint8_t {
    InvalidArgument,  // a bad value, id, size, shape or option (the default)
    File,             // a model file that cannot be read, or is malformed
    Unsupported,      // an architecture, type, op or backend this build does not run
    ContextFull,      // the session's context cannot hold the tokens
    OutOfMemory,      // host or device memory ran out
};

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what, Status status = Status::InvalidArgument)
        : std::runtime_error(what), status_(status) {}
    Status status() const { return status_; }

private:
    Status status_;
};

// printf-style message builder, so checks read as one line.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Throws Error(message) with status InvalidArgument unless cond holds.
#define TESSERA_CHECK(cond, ...)                                   \
    do {                                                           \
        if (!(cond)) throw ::tessera::Error(::tessera::format(__VA_ARGS__)); \
    } while (0)

// The same with another status: TESSERA_CHECK_AS(File, ok, "%s: truncated", path).
#define TESSERA_CHECK_AS(status, cond, ...)                                                       \
    do {                                                                                          \
        if (!(cond)) throw ::tessera::Error(::tessera::format(__VA_ARGS__), ::tessera::Status::status); \
    } while (0)

}  // namespace tessera
