#!/usr/bin/env bash
# The one prepared GPU check: builds tessera with CUDA for this machine's GPU, runs the GPU tests (test_ops
# compares every op with the reference, test_cuda runs every golden case on the GPU) and the GPU benchmarks,
# and writes each step's output under OUT (default $OUT or ./gpu-results). Aimed at a few minutes on an H200.
#
#   bash tools/gpu-check.sh [OUT]          SKIP_BENCH=1 to stop after the tests
#   PREBUILT=1 BUILD=dir bash tools/gpu-check.sh   runs a build made elsewhere (a GPU machine without the
#                                          Debian headers): no configure, build or ctest, only the programs
#   STEP_TIMEOUT=S                         stops any one step after S seconds (default 600)
#
# Figures it produces:
#   attention.txt     bench attention --device cuda: decode GB/s per mapping, prefill GFLOP/s at 4K/16K
#   sdpa.txt          PyTorch's scaled_dot_product_attention on the same prefill shapes (when torch is present)
#   decode-*.txt      bench -m on Llama-8B-shaped Q4_0 and F16 models from make-model: tokens/s and GB/s
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-results}}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
JOBS=$(nproc)
PEAK_GBS=${PEAK_GBS:-4800}  # H200 HBM3e
status=0

step() {  # step NAME COMMAND...: runs it, output to OUT/NAME.txt, and records pass/fail in OUT/summary.txt
    local name=$1
    shift
    local t0=$SECONDS
    if timeout "${STEP_TIMEOUT:-600}" "$@" >"$OUT/$name.txt" 2>&1; then
        echo "ok    $name ($((SECONDS - t0)) s)" | tee -a "$OUT/summary.txt"
    else
        echo "FAIL  $name ($((SECONDS - t0)) s, exit $?): see $name.txt" | tee -a "$OUT/summary.txt"
        status=1
    fi
}

: >"$OUT/summary.txt"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >>"$OUT/summary.txt"

# The shared test data: beside the checkout, or copied into it (a GPU machine gets the working tree only:
# copy ../shared to ./shared first, untracked, for the golden cases to run there).
SHARED=${TESSERA_SHARED:-}
if [ -z "$SHARED" ]; then
    if [ -d ../shared/golden ]; then SHARED=$(cd ../shared && pwd); elif [ -d shared/golden ]; then SHARED=$(pwd)/shared; fi
fi
echo "shared data: ${SHARED:-none}" | tee -a "$OUT/summary.txt"

# Only this GPU's architecture: a full sm_80 + sm_90 + PTX build is CI's job.
ARCH=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')}
ARCH=${ARCH:-90}
if [ "${PREBUILT:-0}" != 1 ]; then
    step configure cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTESSERA_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH-real" ${SHARED:+-DTESSERA_SHARED_DIR="$SHARED"}
    step build cmake --build "$BUILD" -j "$JOBS"
fi
T="$BUILD/tessera"
# The test programs live in $BUILD/tests, not beside the CUDA module: name it for them.
export TESSERA_CUDA_MODULE="$BUILD/libtessera-cuda.so"

step test_ops "$BUILD/tests/test_ops"
step test_cuda "$BUILD/tests/test_cuda"
step test_attention "$BUILD/tests/test_attention"
[ "${PREBUILT:-0}" = 1 ] || step ctest bash -c "cd '$BUILD' && ctest -j '$JOBS' --output-on-failure -E '^(test_ops|test_cuda|test_attention)$'"

# The command on the GPU prints what it prints on the cpu (greedy, stories260K).
if [ -n "$SHARED" ] && [ -f "$SHARED/models/stories260K.gguf" ]; then
    for dev in cpu cuda; do
        step "run-$dev" bash -c "'$T' run -m '$SHARED/models/stories260K.gguf' -p 'Once upon a time' -n 96 \
            --temp 0 --device $dev >'$OUT/text-$dev.txt'"
    done
    step run-same cmp "$OUT/text-cpu.txt" "$OUT/text-cuda.txt"
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
    step attention "$T" bench attention --device cuda --contexts 1024,4096,16384,32768 --windows 0,4096 \
        --prefill 4096,16384 --bandwidth-gbs "$PEAK_GBS"
    step attention-json "$T" bench attention --device cuda --contexts 4096,16384 --windows 0 \
        --prefill 4096,16384 --bandwidth-gbs "$PEAK_GBS" --json
    if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
        step sdpa python3 tools/sdpa_bench.py
    else
        echo "skip  sdpa (no PyTorch with CUDA on this machine)" | tee -a "$OUT/summary.txt"
    fi
    MODELS=${MODELS:-/tmp/tessera-gpu-models}
    mkdir -p "$MODELS"
    for type in q4_0 f16; do
        m="$MODELS/llama3-8b-shape-$type.gguf"
        [ -f "$m" ] || step "make-model-$type" "$T" make-model --preset llama3-8b-shape --type "$type" -o "$m"
        step "decode-$type" "$T" bench -m "$m" --device cuda -p 512 -n 128 -r 3 --bandwidth-gbs "$PEAK_GBS"
    done
fi

echo "results in $OUT; summary:"
cat "$OUT/summary.txt"
exit $status
