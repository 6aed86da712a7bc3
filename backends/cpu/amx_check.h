// The amx level's self-check, reachable from level-independent code: cpu_level.cpp runs it once on the
// real tiles before it lets the amx level be picked (a CPU or OS that computes tile products differently
// from the SDM's description, or a kernel bug only real tiles show, turns AMX off instead of giving wrong
// answers), and the tests run it on the emulated twin.
#pragma once
#include <string>

namespace tessera::cpu {

// "" when the check passed; else what differed, or why it could not run (the build has no such kernels).
// `emulated`: on the amx level's emulated twin instead of the tiles (the tests' use).
std::string amx_self_check(bool emulated);

}  // namespace tessera::cpu
