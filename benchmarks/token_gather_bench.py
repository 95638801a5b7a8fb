"""Times the token gather's launches one by one (csrc/kernels/cuda/gather.cu:
gather backward for dq and for dk, and the scatter) on one shape, with the
bandwidth they reach, against filling and copying the same output in the
same run. For tuning on a GPU; the launch choice comes from
LIGHTHOUSE_TOKEN_GATHER, read once per process.

  LIGHTHOUSE_LIBRARY=build-gpu/liblighthouse_ops.so PYTHONPATH=python \\
    python3 benchmarks/token_gather_bench.py [--gqa | --n200k] [--once]

--once runs each launch once after one warm-up (for Nsight Compute).
Bytes counted: the output written once, the sub-sequence rows and the slot
table (inv) of the heads read once each; the reads of shared coarse rows and
slots from cache are not counted.
"""

import argparse
import os
import statistics

import torch

import lighthouse  # noqa: F401

SHAPES = {
    # B, N, H, H_kv, d, L, p, top_k
    "gqa": (2, 262144, 16, 4, 64, 4, 4, 2048),
    "n200k": (1, 200000, 8, 8, 128, 3, 4, 2048),
    "n256k": (1, 262144, 8, 8, 128, 3, 4, 4096),
}


def timed(fn, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        ms.append(start.elapsed_time(end))
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gqa")
    ap.add_argument("--once", action="store_true", help="one warm-up and one run of each launch (for ncu)")
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    B, N, H, Hkv, d, L, p, k = SHAPES[a.shape]
    dt = torch.bfloat16
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, N, H, d, device="cuda", dtype=dt, generator=gen)
    kk = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, generator=gen)
    v = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, generator=gen)
    with torch.no_grad():
        e32, inv, *_ = torch.ops.lighthouse._plan(q, kk, v, L, p, k, "norm", 4, "auto", None)
    S = e32.shape[-1]
    sub = torch.randn(B, H, S, d, device="cuda", dtype=dt, generator=gen)
    ops = torch.ops.lighthouse
    esz = torch.tensor([], dtype=dt).element_size()
    sub_bytes = sub.numel() * esz
    inv_bytes = inv.numel() * 4
    out_q = B * N * H * d * esz
    out_kv = B * N * Hkv * d * esz
    fill_q = torch.empty(B, N, H, d, device="cuda", dtype=dt)
    src_q = torch.randn_like(fill_q)
    cases = [
        ("gather bwd dq", lambda: ops._gather_backward(sub, inv, N, H, L, p, k), out_q + sub_bytes + inv_bytes),
        ("gather bwd dk", lambda: ops._gather_backward(sub, inv, N, Hkv, L, p, k), out_kv + sub_bytes + inv_bytes),
        ("scatter", lambda: ops._scatter(sub, e32, inv, N, L, p, k), out_q + sub_bytes + inv_bytes),
        ("fill dq-sized (zero_)", lambda: fill_q.zero_(), out_q),
        ("copy dq-sized (copy_)", lambda: fill_q.copy_(src_q), 2 * out_q),
    ]
    mode = os.environ.get("LIGHTHOUSE_TOKEN_GATHER", "(default)")
    print(f"shape {a.shape}: B={B} N={N} H={H}/{Hkv} d={d} L={L} p={p} top_k={k} S={S}; "
          f"LIGHTHOUSE_TOKEN_GATHER={mode}")
    for name, fn, nbytes in cases:
        fn()
        torch.cuda.synchronize()
        if a.once:
            fn()
            torch.cuda.synchronize()
            continue
        ms = timed(fn, a.reps)
        print(f"  {name:24s} {ms:8.3f} ms  {nbytes / 1e9:6.3f} GB  {nbytes / ms / 1e9:6.2f} TB/s")


if __name__ == "__main__":
    main()
