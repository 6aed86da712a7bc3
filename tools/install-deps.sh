#!/usr/bin/env bash
# Installs what tessera needs on Debian, only what is missing. Runs apt-get when
# it may (root, or sudo without a password); otherwise prints the exact command.
set -euo pipefail

# python3-jinja2: the reference engine tests/jinja/differential.py compares our chat-template engine against.
# libcpp-httplib-dev, nlohmann-json3-dev: tessera serve; python3-venv: its test's virtualenv for the openai client;
# chromium: the test that loads its chat page headless.
# libedit-dev (BSD licence): line editing and history in tessera chat on a terminal.
# libsimde-dev (header-only): the AVX-512 kernels' emulated twin (TESSERA_CPU=avx512-emulated), so the tests
# check the 512-bit kernels bit for bit on CPUs without AVX-512.
packages=(cmake g++ make pkg-config libxsimd-dev libstb-dev doctest-dev libpcre2-dev libomp-dev python3-jinja2
          libcpp-httplib-dev nlohmann-json3-dev python3-venv chromium libedit-dev libsimde-dev)

# `install-deps.sh arm64` (make test-arm64): the aarch64 cross build run under emulation. The cross compiler,
# qemu's user-mode emulator, and the arm64 builds (multiarch) of the libraries the library, the tessera command
# and the tests link: pcre2, cpp-httplib, stb, libedit, libgomp (OpenMP) at run time; xsimd's arm64 package only carries its CMake config for
# the aarch64 library path. Header-only doctest and nlohmann-json are shared with the native build.
need_arm64_arch=0
if [ "${1:-}" = arm64 ]; then
  packages=(cmake make pkg-config doctest-dev nlohmann-json3-dev g++-aarch64-linux-gnu qemu-user
            libxsimd-dev:arm64 libpcre2-dev:arm64 libcpp-httplib-dev:arm64 libstb-dev:arm64 libedit-dev:arm64
            libgomp1:arm64)
  dpkg --print-foreign-architectures | grep -qx arm64 || need_arm64_arch=1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tessera: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  [ $need_arm64_arch -eq 0 ] || dpkg --add-architecture arm64
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  [ $need_arm64_arch -eq 0 ] || sudo dpkg --add-architecture arm64
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "tessera: cannot install as this user. Run:" >&2
  [ $need_arm64_arch -eq 0 ] || echo "  sudo dpkg --add-architecture arm64 && sudo apt-get update" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
