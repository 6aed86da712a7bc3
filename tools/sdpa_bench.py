#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the shapes `tessera bench attention` uses for prefill
(GQA 32/8, head dim 128, causal, F16), counted with the same formula, so the two GFLOP/s figures compare
directly. Run by tools/gpu-check.sh when torch with CUDA is present."""
import time

import torch
import torch.nn.functional as F


def bench(n: int, n_head: int = 32, n_kv_head: int = 8, d: int = 128, reps: int = 5) -> None:
    q = torch.randn(1, n_head, n, d, device="cuda", dtype=torch.float16)
    k = torch.randn(1, n_kv_head, n, d, device="cuda", dtype=torch.float16)
    v = torch.randn(1, n_kv_head, n, d, device="cuda", dtype=torch.float16)
    # Expand the KV heads the way GQA maps them (query head h reads KV head h // group), which every
    # torch version accepts; enable_gqa would avoid the copy but is newer than some installs.
    group = n_head // n_kv_head
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    F.scaled_dot_product_attention(q, k, v, is_causal=True)  # warm-up: kernel selection and loading
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    # causal: n (n + 1) / 2 (query, key) pairs per head, a d_k dot and a d_v axpy each (2 flops per element)
    flops = n * (n + 1) / 2 * n_head * 2.0 * (d + d)
    print(f"sdpa prefill tokens {n:6d}  {best:8.4f} s  {flops / best / 1e9:10.1f} GFLOP/s  (torch {torch.__version__})")


if __name__ == "__main__":
    for n in (4096, 16384):
        bench(n)
