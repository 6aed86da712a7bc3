#!/usr/bin/env bash
# `make demo`: makes a small Llama-shaped model with random weights, generates from it, and, when the
# shared test data is beside the checkout, generates from the real (tiny, trained) stories260K model.
# Works on a fresh machine: nothing is downloaded.  usage: tools/demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
tessera="$build/tessera"
here=$(cd "$(dirname "$0")" && pwd)
shared=${TESSERA_SHARED:-$here/../../shared}
tmp=$(mktemp -d /tmp/tessera-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$tessera" ]; then
    echo "demo: $tessera not found; build first (make build)" >&2
    exit 1
fi

echo "== 1. tessera make-model: a Llama with TinyLlama's proportions (GQA 8/2 heads, SwiGLU FFN),"
echo "      scaled down to 4 layers x 256 wide, random weights, Q8_0, a synthesized 1024-token vocabulary"
"$tessera" make-model --preset tiny --type q8_0 --seed 7 -o "$tmp/tiny-llama.gguf" 2>&1
echo
echo "== 2. tessera run on it (48 tokens, temperature 0.8). The weights are random, so the text is"
echo "      gibberish: this shows the pipeline (load, tokenize, prefill, decode, sample, stream), not a model."
echo "      (stdout carries the generated text; the model, cache and speed lines are stderr.)"
echo "----"
"$tessera" run -m "$tmp/tiny-llama.gguf" -p "Once upon a time" -n 48 --temp 0.8 --seed 1 --threads 2 2>&1
echo "----"

stories="$shared/models/stories260K.gguf"
if [ -f "$stories" ]; then
    echo
    echo "== 3. a real model: stories260K (260K parameters, trained on TinyStories), greedy, 64 tokens."
    echo "      llama.cpp prints the same continuation token for token."
    echo "      prompt: Once upon a time"
    echo "----"
    "$tessera" run -m "$stories" -p "Once upon a time" -n 64 --temp 0 --threads 2 2>&1
    echo "----"
else
    echo
    echo "(no $stories here: skipping the trained-model part)"
fi
