#!/usr/bin/env python3
"""Load figures for `tessera serve` (or any OpenAI-compatible server): N concurrent streamed completions,
each generating a fixed number of tokens (ignore_eos), for each N given. Prints the aggregate generated
tokens/s (all streams' tokens over the wall time) and the time to first token (median and worst).
Standard library only.

usage: serve_bench.py --port 8080 [--streams 1,2,4,8] [--tokens 64] [--model NAME] [--prompt TEXT] [--warmup 1]
(tools/serve_bench.sh starts a server, tessera's or llama.cpp's, and runs this against it.)
"""
import argparse
import http.client
import json
import statistics
import threading
import time


def one_stream(port, model, prompt, tokens, out, cache_prompt=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True, "stream_options": {"include_usage": True},
                       # llama-server keeps each slot's last prompt and reuses the common prefix; every request
                       # here sends the same prompt, so with its cache on it would skip nearly all prompt work.
                       "cache_prompt": cache_prompt})
    t0 = time.monotonic()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    first, n, pieces = None, None, 0
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            n = chunk["usage"]["completion_tokens"]
        elif chunk.get("choices") and chunk["choices"][0].get("text"):
            pieces += 1
            if first is None:
                first = time.monotonic() - t0
    conn.close()
    # A server that sends no usage in the stream (older llama-server) sends one chunk per token.
    out.append((first, n if n is not None else pieces))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--model", default=None, help="default: the first of /v1/models")
    ap.add_argument("--prompt", default="Once upon a time, in a small village by the sea,")
    ap.add_argument("--warmup", type=int, default=1, help="untimed requests before the figures (default 1)")
    ap.add_argument("--cache-prompt", action="store_true",
                    help="let a server that caches prompts (llama-server) reuse them (default: ask it not to)")
    a = ap.parse_args()
    model = a.model
    if model is None:
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
        conn.request("GET", "/v1/models")
        model = json.loads(conn.getresponse().read())["data"][0]["id"]
    # One short request first, untimed: whatever a server does on its first request (paging weights in,
    # building graphs) is not counted against the first figure.
    for _ in range(a.warmup):
        one_stream(a.port, model, a.prompt, 4, [])
    print(f"{'streams':>7} {'agg tok/s':>10} {'tok/s/stream':>12} {'TTFT med ms':>11} {'TTFT max ms':>11}")
    for n in [int(x) for x in a.streams.split(",")]:
        results = []
        threads = [threading.Thread(target=one_stream, args=(a.port, model, a.prompt, a.tokens, results, a.cache_prompt))
                   for _ in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        total = sum(k for _, k in results)
        ttft = [f * 1000 for f, _ in results if f is not None]
        print(f"{n:>7} {total / wall:>10.1f} {total / wall / n:>12.1f} {statistics.median(ttft):>11.0f} "
              f"{max(ttft):>11.0f}")


if __name__ == "__main__":
    main()
