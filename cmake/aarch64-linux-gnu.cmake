# Cross-compiling tessera for aarch64 Linux on a Debian x86-64 machine (`make test-arm64`):
# Debian's cross compiler (g++-aarch64-linux-gnu), the arm64 builds of the libraries through multiarch
# (tools/install-deps.sh arm64), and qemu's user-mode emulator to run what was built. `-cpu max` gives the
# emulated CPU every extension qemu knows (dotprod, i8mm, fp16, ...), so every ARM kernel level runs.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# ctest runs the test binaries through this; tests that start the tessera command prefix it the same way
# (tests/CMakeLists.txt). The arm64 loader and libraries come from multiarch (libc6:arm64, pulled in by the
# -dev packages), found through the usual /etc/ld.so.cache, so no -L sysroot is needed.
find_program(TESSERA_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${TESSERA_QEMU_AARCH64} -cpu max)

# Libraries and packages: the arm64 ones only (multiarch puts them under /usr/lib/aarch64-linux-gnu, which
# CMake searches through CMAKE_LIBRARY_ARCHITECTURE); architecture-independent ones (doctest, nlohmann-json,
# stb's headers) are shared. pkg-config must not hand out the x86-64 .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
