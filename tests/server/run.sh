#!/usr/bin/env bash
# Runs test_server.py against `tessera serve` with the real `openai` client from PyPI, installed into a
# virtual environment kept in the build folder (made once; later runs reuse it).
# usage: run.sh BUILD_DIR SOURCE_DIR SHARED_DIR      exit 77 = skipped (ctest reports it as such)
set -euo pipefail
build=$1 src=$2 shared=$3
model=$shared/models/stories260K.gguf
if [ ! -f "$model" ]; then
  echo "skipped: $model is absent"
  exit 77
fi
venv=$build/server-test-venv
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    echo "skipped: python3 -m venv failed (Debian: apt-get install python3-venv)"
    exit 77
  fi
  # Bounded: a machine without PyPI skips rather than hangs.
  if ! timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<4"; then
    rm -rf "$venv"
    echo "skipped: could not install the openai package from PyPI"
    exit 77
  fi
fi
exec "$venv/bin/python" "$src/tests/server/test_server.py" "$build/tessera" "$model"
