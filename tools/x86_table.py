#!/usr/bin/env python3
"""Issue 12's speed table on the machine this runs on, at every cpu kernel level it has.

usage: tools/x86_table.py TESSERA LLAMA_BENCH [--models DIR] [--types q4_0,q4_k_m,q8_0,f16] [--rounds N]
                          [--threads T] [-p 128] [-n 32] [--levels avx2,avx512,amx]

For each weight type it makes (once, into --models) a TinyLlama-1.1B-shape model with `tessera make-model`,
then for each level this CPU runs (avx2, avx512, amx: forced with TESSERA_CPU, the ones the CPU lacks are
named and skipped) alternates `tessera bench` and llama.cpp's `llama-bench` on the same file, round after
round, so that drifting bandwidth hits both alike. It prints medians, the ratios, and tessera's decode as a
share of the read bandwidth that `tessera bench` measured in the same runs.

Needs no GPU; a full run at 2 threads takes about 10 minutes per level. Run it on a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

LEVELS = ["avx2", "avx512", "amx"]


def level_available(tessera, level):
    r = subprocess.run([tessera, "--version"], env=dict(os.environ, TESSERA_CPU=level),
                       capture_output=True, text=True)
    if r.returncode == 0:
        return True, ""
    return False, (r.stdout + r.stderr).strip().splitlines()[-1]


def tessera_bench(a, level, model):
    cmd = [a.tessera, "bench", "-m", model, "-p", str(a.p), "-n", str(a.n), "-t", str(a.threads), "-r", "2", "--json"]
    r = subprocess.run(cmd, env=dict(os.environ, TESSERA_CPU=level), capture_output=True, text=True, timeout=1800)
    got = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            o = json.loads(line)
            got[o["test"][:2]] = o
    if r.returncode != 0 or not got:
        sys.exit(f"tessera bench failed on {model} at {level}: {r.stderr.strip()[-400:]}")
    return got


def llama_bench(a, model):
    cmd = [a.llama_bench, "-m", model, "-p", str(a.p), "-n", str(a.n), "-t", str(a.threads), "-r", "2", "-o", "jsonl"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    got = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            o = json.loads(line)
            got["pp" if o["n_prompt"] else "tg"] = o["avg_ts"]
    if r.returncode != 0 or not got:
        sys.exit(f"llama-bench failed on {model}: {r.stderr.strip()[-400:]}")
    return got


def make_model(a, kind):
    path = os.path.join(a.models, f"x86_table_tinyllama_{kind}.gguf")
    if not os.path.exists(path):
        print(f"making {path} ...", flush=True)
        subprocess.run([a.tessera, "make-model", "--preset", "tinyllama-1.1b", "--type", kind, "-o", path], check=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("tessera")
    ap.add_argument("llama_bench")
    ap.add_argument("--models", default="/tmp", help="folder for the generated models (default /tmp)")
    ap.add_argument("--types", default="q4_0,q4_k_m,q8_0,f16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--levels", default=",".join(LEVELS), help="levels to measure (default: all it knows)")
    a = ap.parse_args()

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    print(f"CPU: {model_name}; {a.threads} threads; {a.rounds} alternated rounds; medians", flush=True)

    levels = []
    for level in a.levels.split(","):
        ok, why = level_available(a.tessera, level)
        if ok:
            levels.append(level)
        else:
            print(f"skipped {level}: {why}")
    models = {kind: make_model(a, kind) for kind in a.types.split(",")}

    print(f"| level | weights | pp{a.p} tessera / llama.cpp | tg{a.n} tessera / llama.cpp | tessera tg share of bandwidth |")
    print("|---|---|---|---|---|")
    for level in levels:
        for kind, path in models.items():
            ours = {"pp": [], "tg": [], "bw": []}
            theirs = {"pp": [], "tg": []}
            for _ in range(a.rounds):
                o = tessera_bench(a, level, path)
                t = llama_bench(a, path)
                ours["pp"].append(o["pp"]["tokens_per_s"])
                ours["tg"].append(o["tg"]["tokens_per_s"])
                ours["bw"].append(o["tg"]["bandwidth_fraction"] or 0.0)
                theirs["pp"].append(t.get("pp", 0.0))
                theirs["tg"].append(t.get("tg", 0.0))
            m = {k: statistics.median(v) for k, v in ours.items()}
            l = {k: statistics.median(v) for k, v in theirs.items()}
            ratio = lambda x, y: f"{x / y:.2f}x" if y else "n/a"
            print(f"| {level} | {kind} | {m['pp']:.1f} / {l['pp']:.1f} = {ratio(m['pp'], l['pp'])} "
                  f"| {m['tg']:.1f} / {l['tg']:.1f} = {ratio(m['tg'], l['tg'])} | {100 * m['bw']:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
