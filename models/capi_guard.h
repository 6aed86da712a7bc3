// The C API's boundary, shared by its files (capi.cpp, capi_chat.cpp): every exception becomes a status
// code and a per-thread message. A tessera::Error brings its status from where it was raised.
#pragma once
#include <new>
#include <string>

#include "core/error.h"
#include "tessera.h"

namespace tessera::capi {

// Records msg as this thread's tessera_last_error() and returns s.
tessera_status fail(tessera_status s, const std::string& msg);

inline tessera_status status_code(Status s) {
    switch (s) {
        case Status::InvalidArgument: return TESSERA_ERR_INVALID_ARGUMENT;
        case Status::File: return TESSERA_ERR_FILE;
        case Status::Unsupported: return TESSERA_ERR_UNSUPPORTED;
        case Status::ContextFull: return TESSERA_ERR_CONTEXT_FULL;
        case Status::OutOfMemory: return TESSERA_ERR_OUT_OF_MEMORY;
    }
    return TESSERA_ERR_INTERNAL;
}

// Runs body (which returns a tessera_status), catching everything at the boundary.
template <class F>
tessera_status guarded(F&& body) {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return fail(TESSERA_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const Error& e) {
        return fail(status_code(e.status()), e.what());
    } catch (const std::exception& e) {
        return fail(TESSERA_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(TESSERA_ERR_INTERNAL, "unknown error");
    }
}

}  // namespace tessera::capi
