#!/usr/bin/env bash
# Builds and runs a fuzzer (libFuzzer + ASan + UBSan, clang): the GGUF reader (FUZZ_TARGET=gguf, the default)
# or the chat-template engine (FUZZ_TARGET=jinja). Not part of the test suite.
#   make fuzz [FUZZ_SECONDS=60]   make fuzz-jinja [FUZZ_SECONDS=60]   or   bash tests/fuzz/run.sh
# Environment: FUZZ_TARGET, FUZZ_SECONDS (default 60), FUZZ_BUILD (default build-fuzz), FUZZ_ARGS (extra
# libFuzzer flags).
# The corpus grows in $FUZZ_BUILD/corpus across runs; crashes land in $FUZZ_BUILD/artifacts/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECS=${FUZZ_SECONDS:-60}
CXX=${FUZZ_CXX:-clang++}
mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/artifacts" "$OUT/tmp"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS="-std=c++20 -O1 -g -march=native -I$ROOT $SAN"

# core/ as a static archive: only the objects the fuzzer needs are linked. Rebuild an object when its
# source, or any core header, is newer.
newest_header=$(ls -t "$ROOT"/core/*.h | head -1)
objs=()
for src in "$ROOT"/core/*.cpp; do
    obj="$OUT/obj/$(basename "$src" .cpp).o"
    if [[ ! -f $obj || $src -nt $obj || $newest_header -nt $obj ]]; then
        echo "fuzz: compiling core/$(basename "$src")"
        $CXX $FLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done
rm -f "$OUT/libcore.a"
ar rcs "$OUT/libcore.a" "${objs[@]}"

if [[ ${FUZZ_TARGET:-gguf} == jinja ]]; then
    # The template engine: models/jinja's sources plus core (for Error), seeded with real chat templates.
    mkdir -p "$OUT/obj-jinja" "$OUT/corpus-jinja"
    jobjs=()
    newest_jheader=$(ls -t "$ROOT"/models/jinja/*.h | head -1)
    for src in "$ROOT"/models/jinja/*.cpp; do
        obj="$OUT/obj-jinja/$(basename "$src" .cpp).o"
        if [[ ! -f $obj || $src -nt $obj || $newest_jheader -nt $obj ]]; then
            echo "fuzz: compiling models/jinja/$(basename "$src")"
            $CXX $FLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
        fi
        jobjs+=("$obj")
    done
    echo "fuzz: linking fuzz_jinja"
    $CXX $FLAGS -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_jinja.cpp" "${jobjs[@]}" "$OUT/libcore.a" -o "$OUT/fuzz_jinja"
    if [[ -d $ROOT/../shared/chat_templates ]]; then
        cp -n "$ROOT"/../shared/chat_templates/*.jinja "$OUT/corpus-jinja/" 2>/dev/null || true
    fi
    echo "fuzz: running fuzz_jinja for ${SECS}s"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$OUT/fuzz_jinja" "$OUT/corpus-jinja" -max_total_time="$SECS" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/artifacts/jinja-" -print_final_stats=1 ${FUZZ_ARGS:-}
    exit 0
fi

echo "fuzz: linking fuzz_gguf and make_seeds"
$CXX $FLAGS -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_gguf.cpp" "$OUT/libcore.a" -o "$OUT/fuzz_gguf"
$CXX $FLAGS "$ROOT/tests/fuzz/make_seeds.cpp" "$OUT/libcore.a" -o "$OUT/make_seeds"

# Seeds: miniature copies of the shared GGUF files (when ../shared is there) and hand-made ones.
SHARED="$ROOT/../shared"
seeds=()
if [[ -d $SHARED ]]; then
    while IFS= read -r -d '' f; do seeds+=("$f"); done < <(find "$SHARED" -name '*.gguf' -print0 | sort -z)
fi
"$OUT/make_seeds" "$OUT/corpus" "${seeds[@]}"
# Regression inputs (past findings) are always replayed first.
if compgen -G "$ROOT/tests/fuzz/regressions/*" >/dev/null; then
    echo "fuzz: replaying tests/fuzz/regressions"
    FUZZ_TMPDIR="$OUT/tmp" "$OUT/fuzz_gguf" "$ROOT"/tests/fuzz/regressions/*
fi

echo "fuzz: running for ${SECS}s"
FUZZ_TMPDIR="$OUT/tmp" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$OUT/fuzz_gguf" "$OUT/corpus" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-}
