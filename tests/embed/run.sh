#!/usr/bin/env bash
# The embed test: installs the built tree into a temporary prefix, then builds embed.c against the
# installed library twice (pkg-config with cc, and the CMake package), and runs both on a model:
# stories260K when ../shared has it (and checks llama.cpp's greedy text), else one made by make-model.
# usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d /tmp/tessera-embed.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
test -f "$prefix/include/tessera.h"
ls "$prefix"/lib*/libtessera.a "$prefix"/lib*/pkgconfig/tessera.pc > /dev/null

stories=$src/../shared/models/stories260K.gguf
if [ -f "$stories" ]; then
    model=$stories
    expect=", there was a little girl"
else
    model=$tmp/tiny.gguf
    "$prefix/bin/tessera" make-model --preset tiny --type q8_0 -o "$model" 2> /dev/null
    expect=""
fi

echo "== pkg-config + cc"
pcdir=$(dirname "$(ls "$prefix"/lib*/pkgconfig/tessera.pc | head -1)")
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs tessera)
echo "cc embed.c $flags"
cc -std=c11 -Wall -Werror "$src/tests/embed/embed.c" -o "$tmp/embed_pc" $flags
"$tmp/embed_pc" "$model" "Once upon a time" 16 "$expect"

echo "== find_package(tessera)"
cmake -S "$src/tests/embed" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$tmp/cmake.log" \
    || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$tmp/build" > "$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
"$tmp/build/embed" "$model" "Once upon a time" 16 "$expect"
echo "embed: ok"
