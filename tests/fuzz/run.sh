#!/usr/bin/env bash
# Builds and runs one fuzzer (libFuzzer + ASan + UBSan, clang). Not part of the test suite.
#   make fuzz [FUZZ_TARGET=gguf] [FUZZ_SECONDS=60]      or   bash tests/fuzz/run.sh
# Targets: gguf (the GGUF reader and writer), tokenizer (every shared vocabulary kind, detokenize, round
# trip), chat_template (family matcher and Jinja engine), jinja (the template engine alone, seeded with
# ../shared/chat_templates; also make fuzz-jinja), sampler (parameters, logits, accepted ids).
# Environment: FUZZ_TARGET (default gguf), FUZZ_SECONDS (default 60), FUZZ_BUILD (default build-fuzz),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_TMPDIR (where fuzz_gguf writes its round trips; /dev/shm spares
# the disk). Each target's corpus grows in $FUZZ_BUILD/corpus-TARGET across runs, starting from
# tests/fuzz/corpus/TARGET; crashes land in $FUZZ_BUILD/artifacts/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECS=${FUZZ_SECONDS:-60}
TARGET=${FUZZ_TARGET:-gguf}
CXX=${FUZZ_CXX:-clang++}
[[ -f $ROOT/tests/fuzz/fuzz_$TARGET.cpp ]] || { echo "fuzz: no target '$TARGET' (tests/fuzz/fuzz_*.cpp)" >&2; exit 2; }
CORPUS="$OUT/corpus"
[[ $TARGET == gguf ]] || CORPUS="$OUT/corpus-$TARGET"
mkdir -p "$OUT/obj" "$CORPUS" "$OUT/artifacts" "$OUT/tmp"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS="-std=c++20 -O1 -g -march=native -I$ROOT $SAN"

# core/ and the model-side text code (tokenizers, unicode, chat templates, Jinja, sampler) as a static
# archive: only the objects a fuzzer needs are linked. Rebuild an object when its source, or any header of
# core/ or models/, is newer.
newest_header=$(ls -t "$ROOT"/core/*.h "$ROOT"/models/*.h "$ROOT"/models/jinja/*.h 2>/dev/null | head -1)
objs=()
for src in "$ROOT"/core/*.cpp "$ROOT"/models/tokenizer*.cpp "$ROOT"/models/unicode.cpp \
           "$ROOT"/models/chat_template.cpp "$ROOT"/models/chat_jinja.cpp "$ROOT"/models/sampler.cpp \
           "$ROOT"/models/jinja/*.cpp; do
    [[ -f $src ]] || continue
    rel=${src#"$ROOT"/}
    obj="$OUT/obj/${rel//\//_}"
    obj="${obj%.cpp}.o"
    if [[ ! -f $obj || $src -nt $obj || $newest_header -nt $obj ]]; then
        echo "fuzz: compiling $rel"
        $CXX $FLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done
rm -f "$OUT/libcore.a"
ar rcs "$OUT/libcore.a" "${objs[@]}"
LIBS="$OUT/libcore.a $(pkg-config --libs libpcre2-8)"

echo "fuzz: linking fuzz_$TARGET"
$CXX $FLAGS -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_$TARGET.cpp" $LIBS -o "$OUT/fuzz_$TARGET"

SHARED="$ROOT/../shared"
if [[ $TARGET == gguf ]]; then
    # Seeds: miniature copies of the shared GGUF files (when ../shared is there) and hand-made ones.
    $CXX $FLAGS "$ROOT/tests/fuzz/make_seeds.cpp" "$OUT/libcore.a" -o "$OUT/make_seeds"
    seeds=()
    if [[ -d $SHARED ]]; then
        while IFS= read -r -d '' f; do seeds+=("$f"); done < <(find "$SHARED" -name '*.gguf' -print0 | sort -z)
    fi
    "$OUT/make_seeds" "$CORPUS" "${seeds[@]}"
fi
# The checked-in seeds for this target (small, hand-made: see tests/fuzz/corpus/README).
if [[ -d $ROOT/tests/fuzz/corpus/$TARGET ]]; then cp -n "$ROOT/tests/fuzz/corpus/$TARGET"/* "$CORPUS"/ 2>/dev/null || true; fi
# The jinja target also starts from the real chat templates.
if [[ $TARGET == jinja && -d $SHARED/chat_templates ]]; then
    cp -n "$SHARED"/chat_templates/*.jinja "$CORPUS"/ 2>/dev/null || true
fi
# Regression inputs (past findings) are always replayed first.
if compgen -G "$ROOT/tests/fuzz/regressions/$TARGET-*" >/dev/null; then
    echo "fuzz: replaying tests/fuzz/regressions/$TARGET-*"
    FUZZ_TMPDIR="${FUZZ_TMPDIR:-$OUT/tmp}" FUZZ_VOCAB_DIR="$SHARED/vocab" "$OUT/fuzz_$TARGET" "$ROOT"/tests/fuzz/regressions/"$TARGET"-*
fi

echo "fuzz: running fuzz_$TARGET for ${SECS}s"
FUZZ_TMPDIR="${FUZZ_TMPDIR:-$OUT/tmp}" FUZZ_VOCAB_DIR="$SHARED/vocab" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$OUT/fuzz_$TARGET" "$CORPUS" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$OUT/artifacts/$TARGET-" -print_final_stats=1 ${FUZZ_ARGS:-}
