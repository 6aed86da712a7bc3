#!/usr/bin/env bash
# Starts a server on MODEL, runs tools/serve_bench.py against it (aggregate generated tok/s and time to
# first token at each count of concurrent streams), prints the engine's time split (tessera only), stops it.
# The two servers get the same slots, context per slot, threads and requests:
#   tools/serve_bench.sh tessera build/tessera MODEL [PORT] [STREAMS] [TOKENS]
#   tools/serve_bench.sh llama   path/to/llama-server MODEL [PORT] [STREAMS] [TOKENS]
# Run timings on a quiet machine (tquiet here).
set -eu
kind=$1 bin=$2 model=$3 port=${4:-8090} streams=${5:-1,2,4,8} tokens=${6:-32}
slots=8 ctx=512 threads=2
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
case $kind in
    tessera) "$bin" serve -m "$model" --parallel $slots --ctx $ctx -t $threads --port "$port" 2>"$log" & ;;
    # llama-server's -c is the whole cache, shared by its slots: 8 x 512
    llama) "$bin" -m "$model" -t $threads -tb $threads -np $slots -c $((slots * ctx)) -cb --port "$port" >"$log" 2>&1 & ;;
    *) echo "usage: $0 tessera|llama BINARY MODEL [PORT] [STREAMS] [TOKENS]" >&2; exit 2 ;;
esac
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.25
done
echo "$kind: $(basename "$model"), $slots slots x $ctx, $threads threads, $tokens tokens per stream"
python3 "$here/serve_bench.py" --port "$port" --streams "$streams" --tokens "$tokens"
if [ "$kind" = tessera ]; then
    curl -sf "http://127.0.0.1:$port/metrics" | grep -E "^tessera_(compute|step_other)_seconds_total|^tessera_batches_total" || true
fi
