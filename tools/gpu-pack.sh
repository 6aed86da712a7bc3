#!/usr/bin/env bash
# Packs a CUDA build made here, with the shared test data the GPU tests read, for a GPU machine that has
# the CUDA toolkit but not the Debian headers tessera builds against (xsimd, doctest, stb, ...), and that
# receives the working tree alone (64 MiB at most). The programs keep the paths they were built with
# (the checkout, the build folder and ../shared): the launcher recreates those paths as links there.
#
#   bash tools/gpu-pack.sh [BUILD] [PACK]      BUILD defaults to build, PACK to build-gpupack (ignored)
#   then, on the GPU machine, from the checkout:  bash PACK/launch.sh    (TOTAL=S caps the whole check)
#
# xz with a 64 MiB window packs the four programs in little more than one (they share libtessera).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PACK=${2:-build-gpupack}
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
[ -f "$BUILD/libtessera-cuda.so" ] || { echo "gpu-pack: $BUILD has no libtessera-cuda.so: configure it with -DTESSERA_CUDA=ON and build" >&2; exit 2; }
SRC=$(cache CMAKE_HOME_DIRECTORY)
BIN=$(cache tessera_BINARY_DIR)
SHARED=$(cache TESSERA_SHARED_DIR)
SHARED=$(cd "$SHARED" && pwd)
rm -rf "$PACK" && mkdir -p "$PACK/stage/tests"
for f in tessera libtessera-cuda.so; do strip -o "$PACK/stage/$f" "$BUILD/$f"; done
for t in test_ops test_cuda test_attention; do strip -o "$PACK/stage/tests/$t" "$BUILD/tests/$t"; done
tar -C "$PACK/stage" -cf - . | xz -T0 -9 >"$PACK/bin.tar.xz"
rm -rf "$PACK/stage"
# The golden cases test_cuda runs (golden/extra is not among them) and the small models.
(cd "$SHARED" && tar -cf - --exclude=golden/extra golden models) | xz -T0 -9 >"$PACK/shared.tar.xz"
cat >"$PACK/launch.sh" <<LAUNCH
#!/usr/bin/env bash
# Made by tools/gpu-pack.sh: unpacks the build at $BIN and the shared data at $SHARED (the paths the
# programs were built with; the checkout is linked at $SRC), then runs tools/gpu-check.sh on them.
set -u
R=\$(pwd)
[ -e "$SRC" ] || [ "\$R" = "$SRC" ] || { mkdir -p "\$(dirname "$SRC")" && ln -s "\$R" "$SRC"; }
mkdir -p "$BIN" "$SHARED"
tar -C "$BIN" -xJf "$PACK/bin.tar.xz"
tar -C "$SHARED" -xJf "$PACK/shared.tar.xz"
PREBUILT=1 BUILD="$BIN" TESSERA_SHARED="$SHARED" STEP_TIMEOUT=\${STEP_TIMEOUT:-150} \\
    timeout "\${TOTAL:-300}" bash tools/gpu-check.sh "\$R/gpu-results"
echo "gpu-check exit \$?"
# A device run brings back a few files only: the summary and one archive, in \$OUT.
cp "\$R/gpu-results/summary.txt" "\${OUT:-\$R}/gpu-summary.txt" 2>/dev/null
tar -C "\$R" -czf "\${OUT:-\$R}/gpu-results.tar.gz" gpu-results
LAUNCH
chmod +x "$PACK/launch.sh"
du -sh "$PACK"/*
