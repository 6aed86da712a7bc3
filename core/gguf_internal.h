// Helpers shared by the GGUF reader (gguf_parse.cpp, gguf.cpp) and writer (gguf_write.cpp).
// Not part of the public API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/gguf.h"

namespace tessera::gguf_detail {

inline constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr size_t kDefaultAlignment = 32;

// True for the 13 value types of the GGUF spec.
inline bool is_valid_value_type(uint32_t t) { return t <= uint32_t(GGUFType::FLOAT64); }

// Bytes a scalar of this type takes in the file; 0 for STRING and ARRAY.
size_t scalar_bytes(GGUFType t);

// The fewest bytes one value of this type can take in a file (a string: its 8-byte length; an array: its
// 4-byte element type and 8-byte count). Bounds counts read off a file before anything is allocated.
size_t min_encoded_bytes(GGUFType t);

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const std::string& s);

// A name made safe for an error message: control bytes and invalid UTF-8 escaped as \xNN, long names cut
// (a hostile file must not write terminal escapes or megabytes into a message).
std::string printable(const std::string& s, size_t max_bytes = 96);

// Why a tensor name is unacceptable, or "" when it is fine (shared by reader and writer).
std::string tensor_name_problem(const std::string& name);
// Why a key is unacceptable, or "".
std::string key_problem(const std::string& key);

// For a type id tessera cannot use: what llama.cpp calls it and whether it was removed ("iq2_xxs, which
// tessera does not support"), or "an unknown type id".
std::string describe_unsupported_type(uint32_t id);

}  // namespace tessera::gguf_detail
