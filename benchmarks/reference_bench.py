"""Lighthouse (this project) against the paper's reference implementation,
in one process on one GPU, with the stock SDPA call on S tokens as the floor.

The reference (ighoshsubho/lighthouse-attention: Triton + NVRTC kernels, a
torchtitan patch) is not part of this project: scripts/fetch-reference.sh
puts its two source files and einops into .deps/reference. Its layer is run
as its torchtitan model runs it: `LighthouseLocal` with the norm scorer
(`DialatedLighthouseNormScorer`) and, as the inner attention, stock causal
SDPA pinned to cuDNN, the backend our op uses by default. Inputs
[B, N, H, d] bf16; the reference returns [B, H, N, d] (the transpose back a
model needs is not timed), ours [B, N, H, d].

Timing: CUDA events, L2 flushed before each run, warm-up runs first (they
also compile the reference's kernels), median of the timed runs. Forward is
the training forward (inputs require grad); fwd+bwd includes the backward to
q, k, v.

  PYTHONPATH=python LIGHTHOUSE_LIBRARY=build-gpu/liblighthouse_ops.so \
    python3 benchmarks/reference_bench.py --json out.json
"""

import argparse
import json
import os
import statistics
import sys
import types

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_reference(path):
    """Imports the reference's module with its torchtitan import path mapped
    to the fetched file."""
    sys.path[:0] = [os.path.join(path, "python"), os.path.join(path, "src")]
    import lighthouse_selection_cuda as nvrtc_module

    for name in ("torchtitan", "torchtitan.models", "torchtitan.models.llama3", "torchtitan.models.llama3.model"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchtitan.models.llama3.model.lighthouse_selection_cuda"] = nvrtc_module
    import lighthouse_selection

    return lighthouse_selection


def cudnn_causal_sdpa(q, k, v):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Timer:
    def __init__(self, warmup, repeats):
        self.warmup, self.repeats = warmup, repeats
        self.flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def median_ms(self, fn):
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            self.flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def fwd_and_fwd_bwd(timer, fn, inputs):
    """(forward ms, forward+backward ms) of fn(*inputs)."""
    grad = None

    def forward():
        return fn(*inputs)

    def forward_backward():
        nonlocal grad
        out = fn(*inputs)
        if grad is None:
            grad = torch.randn_like(out)
        torch.autograd.backward(out, grad)
        for x in inputs:
            x.grad = None

    return timer.median_ms(forward), timer.median_ms(forward_backward)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq-lens", type=int, nargs="+", default=[32768, 65536, 131072, 262144, 524288])
    ap.add_argument("--top-k", type=int, nargs="+", default=[2048, 4096, 4096, 4096, 4096])
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference", default=os.path.join(ROOT, ".deps", "reference"))
    ap.add_argument("--json")
    args = ap.parse_args()
    if len(args.top_k) == 1:
        args.top_k *= len(args.seq_lens)

    import lighthouse  # noqa: F401  (registers torch.ops.lighthouse)

    ref = load_reference(args.reference)
    with open(os.path.join(args.reference, "COMMIT")) as f:
        ref_commit = f.read().strip()
    timer = Timer(args.warmup, args.repeats)
    L, p, H, d = args.levels, args.pool, args.heads, args.head_dim
    print(f"Lighthouse vs the reference implementation ({ref_commit[:7]}) on {torch.cuda.get_device_name()}: "
          f"bf16, B=1 H={H} d={d}, L={L} p={p}, inner SDPA cuDNN; median of {args.repeats} after {args.warmup} warm-up")
    print(f"{'N':>9} {'top_k':>6} {'S':>7} | {'ours fwd':>9} {'ours f+b':>9} | {'ref fwd':>9} {'ref f+b':>9} | "
          f"{'floor fwd':>9} {'floor f+b':>9} | {'ref/ours':>8} {'ref/ours':>8} | {'ours/flr':>8} {'ref/flr':>8}")
    rows = []
    for N, top_k in zip(args.seq_lens, args.top_k):
        S = lighthouse.subsequence_length(N, L, p, top_k)
        q, k, v = (torch.randn(1, N, H, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        row = {"N": N, "top_k": top_k, "S": S}
        row["ours_fwd_ms"], row["ours_fwd_bwd_ms"] = fwd_and_fwd_bwd(
            timer, lambda a, b, c: torch.ops.lighthouse.attention(a, b, c, L, p, top_k, backend="cudnn"), (q, k, v))
        layer = ref.LighthouseLocal(cudnn_causal_sdpa, ref.DialatedLighthouseNormScorer(pooling_factor=p, levels=L),
                                    num_levels=L, pooling_factor=p, topk=top_k)
        try:
            row["ref_fwd_ms"], row["ref_fwd_bwd_ms"] = fwd_and_fwd_bwd(timer, layer, (q, k, v))
        except Exception as e:  # the reference's own failure, reported as such
            row["ref_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            torch.cuda.synchronize()
        del q, k, v
        qs, ks, vs = (torch.randn(1, H, S, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        row["floor_fwd_ms"], row["floor_fwd_bwd_ms"] = fwd_and_fwd_bwd(timer, cudnn_causal_sdpa, (qs, ks, vs))
        del qs, ks, vs
        torch.cuda.empty_cache()
        rows.append(row)
        ours = f"{row['ours_fwd_ms']:9.3f} {row['ours_fwd_bwd_ms']:9.3f}"
        floor = f"{row['floor_fwd_ms']:9.3f} {row['floor_fwd_bwd_ms']:9.3f}"
        ours_floor = f"{row['ours_fwd_ms'] / row['floor_fwd_ms']:7.2f}x"
        if "ref_error" in row:
            ref, ratios, ref_floor = f"{'fails':>9} {'':>9}", " " * 17, ""
        else:
            ref = f"{row['ref_fwd_ms']:9.3f} {row['ref_fwd_bwd_ms']:9.3f}"
            ratios = (f"{row['ref_fwd_ms'] / row['ours_fwd_ms']:7.2f}x "
                      f"{row['ref_fwd_bwd_ms'] / row['ours_fwd_bwd_ms']:7.2f}x")
            ref_floor = f"{row['ref_fwd_ms'] / row['floor_fwd_ms']:7.2f}x"
        print(f"{N:9d} {top_k:6d} {S:7d} | {ours} | {ref} | {floor} | {ratios} | {ours_floor} {ref_floor:>8}",
              flush=True)
        if "ref_error" in row:
            print(f"          reference at N={N}: {row['ref_error']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "cudnn": torch.backends.cudnn.version(), "reference_commit": ref_commit,
                       "config": {"B": 1, "H": H, "d": d, "L": L, "p": p, "dtype": "bfloat16"}, "rows": rows}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
