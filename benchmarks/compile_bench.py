"""Compiled vs eager: forward+backward time of one Llama block whose attention
is torch.ops.lighthouse.attention (tests/python/llama_block.py), on one GPU.

torch.compile(fullgraph=True, backend="inductor"), for the fixed length
(--dynamic: the sequence length marked dynamic); compile time is excluded
(warm-up calls first); each
timing is the median of CUDA-event timings of forward+backward (output times
a fixed gradient). Defaults: the paper-530m block (d_model 1024, 8 heads of
128, SwiGLU 1536, Lighthouse L=3, p=4, top_k=1536) in bfloat16 at 32K tokens.
Prints one line per mode and the ratio compiled / eager (issue 11's target:
<= 1.05), and with --json writes them.

  python3 benchmarks/compile_bench.py [--n 32768] [--json out.json]
(with the package installed, or PYTHONPATH=python LIGHTHOUSE_LIBRARY=...)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))

import lighthouse  # noqa: E402,F401  (registers the ops)
from llama_block import LlamaBlock  # noqa: E402


def time_fwd_bwd(fn, x, grad, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn(x).backward(grad)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x).backward(grad)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32768, help="tokens (sequence length), batch 1")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--config", type=int, nargs=3, default=(3, 4, 1536), metavar=("L", "P", "TOP_K"))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dynamic", action="store_true", help="mark the sequence length dynamic")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    torch.manual_seed(0)
    blk = LlamaBlock(args.dim, args.heads, args.kv_heads, args.hidden, tuple(args.config)).cuda().bfloat16()
    x = torch.randn(1, args.n, args.dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn_like(x)
    if args.dynamic:
        torch._dynamo.mark_dynamic(x, 1)
    compiled = torch.compile(blk, fullgraph=True, backend="inductor")

    t0 = time.perf_counter()
    compiled(x).backward(grad)  # compile (forward and backward graphs)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0

    result = {"n": args.n, "dim": args.dim, "heads": args.heads, "kv_heads": args.kv_heads, "hidden": args.hidden,
              "config": list(args.config), "dtype": "bfloat16", "dynamic": args.dynamic, "compile_s": compile_s,
              "device": torch.cuda.get_device_name(0), "torch": torch.__version__, "reps": args.reps}
    with torch._dynamo.config.patch(error_on_recompile=True):
        for name, fn in (("eager", blk), ("compiled", compiled), ("eager", blk), ("compiled", compiled)):
            times = time_fwd_bwd(fn, x, grad, args.warmup, args.reps)
            result.setdefault(name, []).extend(times)
    for name in ("eager", "compiled"):
        result[f"{name}_median_ms"] = statistics.median(result.pop(name))
        print(f"{name:9s} forward+backward median {result[f'{name}_median_ms']:.3f} ms "
              f"({2 * args.reps} reps, N={args.n})")
    result["ratio"] = result["compiled_median_ms"] / result["eager_median_ms"]
    print(f"compiled / eager = {result['ratio']:.3f} (target <= 1.05); compile took {compile_s:.1f} s "
          f"on {result['device']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
