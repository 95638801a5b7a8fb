"""Times the data-moving kernels' launches one by one (csrc/kernels/cuda/
gather.cu: the token gather as gather backward for dq and for dk and as the
scatter; the slot gather as the gather of q, k, v and the scatter backward)
on one shape, with the bandwidth they reach, against filling and copying a
dq-sized tensor in the same run. For tuning on a GPU; the launch choices
come from LIGHTHOUSE_TOKEN_GATHER and LIGHTHOUSE_SCATTER_BACKWARD (gather.cu),
read once per process.

  LIGHTHOUSE_LIBRARY=build-gpu/liblighthouse_ops.so PYTHONPATH=python \\
    python3 benchmarks/gather_bench.py [--shape gqa|n98k|n200k|n256k|n1m] [--once]

--once runs each launch once after one warm-up (for Nsight Compute).
Bytes counted: the plan (scores pass, pooling and select): q, k, v read
once, the pooled rows written; token gather: the output written once, the sub-sequence rows
and the slot table (inv) of the heads read once each (reads of shared coarse
rows and slots from cache not counted); slot gather: the output written once
and every token row of every span read once (for q, k, v: each query head's
spans, though GQA heads share k and v rows in cache); the scatter backward's
window kernel: dout and the slot table read once, the output written once.
"""

import argparse
import os
import statistics
import time

import torch

import lighthouse  # noqa: F401

SHAPES = {
    # B, N, H, H_kv, d, L, p, top_k
    "gqa": (2, 262144, 16, 4, 64, 4, 4, 2048),
    "n98k": (1, 98304, 8, 8, 128, 3, 4, 1536),
    "n200k": (1, 200000, 8, 8, 128, 3, 4, 2048),
    "n256k": (1, 262144, 8, 8, 128, 3, 4, 4096),
    "n1m": (1, 1048576, 8, 8, 128, 3, 4, 4096),
    "tiny": (1, 8192, 4, 2, 64, 3, 4, 256),  # a smoke test, also on a CPU
}


def padded(N, L, p, k):
    """N rounded up to p^(L-1) * top_k / 128 (the op's N_pad)."""
    unit = p ** (L - 1) * k // 128
    return -(-N // unit) * unit


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps, dev):
    if dev != "cuda":
        ms = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ms)
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
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    dev = a.device
    B, N, H, Hkv, d, L, p, k = SHAPES[a.shape]
    dt = torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(B, N, H, d, device=dev, dtype=dt, generator=gen)
    kk = torch.randn(B, N, Hkv, d, device=dev, dtype=dt, generator=gen)
    v = torch.randn(B, N, Hkv, d, device=dev, dtype=dt, generator=gen)
    with torch.no_grad():
        e32, inv, cq, ck, cv = torch.ops.lighthouse._plan(q, kk, v, L, p, k, "norm", 4, "auto", None)
    S = e32.shape[-1]
    sub = torch.randn(B, H, S, d, device=dev, dtype=dt, generator=gen)
    ops = torch.ops.lighthouse
    esz = dt.itemsize
    sub_bytes = sub.numel() * esz
    inv_bytes = inv.numel() * 4
    out_q = B * N * H * d * esz
    out_kv = B * N * Hkv * d * esz
    fill_q = torch.empty(B, N, H, d, device=dev, dtype=dt)
    src_q = torch.randn_like(fill_q)
    dout = torch.randn(B, N, H, d, device=dev, dtype=dt, generator=gen)
    # Rows read by the slot gather: the span of every slot (the gather copies
    # the pooled levels' rows instead of summing their spans).
    n_pad = padded(N, L, p, k)
    bounds, acc = [], 0
    for lev in range(L - 1):
        acc += n_pad // p ** lev
        bounds.append(acc)
    assert acc + n_pad // p ** (L - 1) == inv.shape[-1], "pyramid size"
    lvl = torch.bucketize(e32, torch.tensor(bounds, device=dev, dtype=torch.int32), right=True)
    span = (p ** lvl).sum().item()
    # The pooled levels (a copy of Geometry::pool_first's rule): copied rows,
    # not spans.
    pool_first = L - 2 if L >= 3 and p ** (L - 2) >= 16 else L - 1
    span_fwd = torch.where(lvl >= pool_first, 1, p ** lvl).sum().item()
    row = d * esz
    # The scatter backward's window kernel reads each dout row once; the slot
    # gather reads every span. Which one runs: a copy of gather.cu's rule
    # (scatter_backward_by_window: L <= 4 and the finer levels' spans at
    # least a quarter of a tile), or the env.
    finer = sum(128 * p * p ** lev for lev in range(L - 1))
    forced = os.environ.get("LIGHTHOUSE_SCATTER_BACKWARD")
    window = L <= 4 and (forced == "window" if forced else 4 * finer >= padded(N, L, p, k) // (k // 128))
    scatter_bwd_bytes = sub_bytes + (out_q + inv_bytes if window else span * row)
    qkv_bytes = (q.numel() + kk.numel() + v.numel()) * esz
    pooled_bytes = (cq.numel() + ck.numel() + cv.numel()) * esz

    def plan():
        with torch.no_grad():
            return ops._plan(q, kk, v, L, p, k, "norm", 4, "auto", None)

    cases = [
        ("plan (scores, select)", plan, qkv_bytes + pooled_bytes),
        ("gather bwd dq", lambda: ops._gather_backward(sub, inv, N, H, L, p, k), out_q + sub_bytes + inv_bytes),
        ("gather bwd dk", lambda: ops._gather_backward(sub, inv, N, Hkv, L, p, k), out_kv + sub_bytes + inv_bytes),
        ("scatter", lambda: ops._scatter(sub, e32, inv, N, L, p, k), out_q + sub_bytes + inv_bytes),
        ("gather q, k, v", lambda: ops._gather(q, kk, v, e32, inv, cq, ck, cv, L, p, k),
         3 * sub_bytes + 3 * span_fwd * row),
        ("scatter bwd", lambda: ops._scatter_backward(dout, e32, inv, L, p, k), scatter_bwd_bytes),
        ("fill dq-sized (zero_)", lambda: fill_q.zero_(), out_q),
        ("copy dq-sized (copy_)", lambda: fill_q.copy_(src_q), 2 * out_q),
    ]
    env = " ".join(f"{n}={os.environ[n]}" for n in ("LIGHTHOUSE_TOKEN_GATHER", "LIGHTHOUSE_SCATTER_BACKWARD", "LIGHTHOUSE_SLOT_GATHER")
                   if n in os.environ) or "default launch choices"
    print(f"shape {a.shape}: B={B} N={N} H={H}/{Hkv} d={d} L={L} p={p} top_k={k} S={S}; {env}")
    for name, fn, nbytes in cases:
        fn()
        sync(dev)
        if a.once:
            fn()
            sync(dev)
            continue
        ms = timed(fn, a.reps, dev)
        print(f"  {name:24s} {ms:8.3f} ms  {nbytes / 1e9:6.3f} GB  {nbytes / ms / 1e9:6.2f} TB/s")


if __name__ == "__main__":
    main()
