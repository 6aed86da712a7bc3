#!/usr/bin/env bash
# `make test-arm64`: cross-compiles the library, the tessera command and the CPU test binaries for aarch64
# Linux (cmake/aarch64-linux-gnu.cmake) and runs them under qemu-aarch64 user-mode emulation with `-cpu max`,
# so every ARM kernel level (tests force each one, as on x86) runs. Emulation says nothing about speed.
# Usage: tools/test-arm64.sh [BUILD_DIR] (default build-arm64). Needs tools/install-deps.sh arm64 first.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-arm64}
jobs=${JOBS:-$(nproc)}
# cpu_level_symbols_<level> checks each level's objects with the cross nm (no emulation). test_quant's
# dot_tile cases (every weight type at every level: the NEON kernels' own test) run on their own below.
tests=(test_ops test_cpu_kernels test_attention test_golden test_tokenizer)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
[ -f "$build/CMakeCache.txt" ] ||
  cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
        -DTESSERA_CUDA=OFF "${launcher[@]}"
cmake --build "$build" -j "$jobs" --target tessera_cli "${tests[@]}"

# ctest runs the tests through the emulator the toolchain file names (CMAKE_CROSSCOMPILING_EMULATOR); the
# kernel level the emulated CPU gets is printed first, so the log says what ran.
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
"$qemu" -cpu max "$build/tessera" --version
regex="^($(IFS='|'; echo "${tests[*]}")|cpu_level_symbols_.*)\$"
start=$(date +%s)
cmake --build "$build" -j "$jobs" --target test_quant
(cd "$build" && ctest --output-on-failure -j "$jobs" -R "$regex")
"$qemu" -cpu max "$build/tests/test_quant" -tc='dot_tile*'  # its CLI cases check the binary, not a command
echo "tessera: the emulated aarch64 suite took $(( $(date +%s) - start )) s"
