#!/usr/bin/env bash
# `make demo`: runs one transformer block on random data and prints what it computed.
# (Replaced by a model made with make-model once the Llama model lands.)
set -euo pipefail
build=${1:-build}
"$build/tessera" demo
