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
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tessera: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "tessera: cannot install as this user. Run:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
