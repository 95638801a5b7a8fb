"""One rank of the context-parallel tests (run by test_cp.py under torchrun,
and by test_cp_failure.py / tests/gpu by hand). Uses only the public Python
API (lighthouse.cp over torch.distributed groups) and checks, on this rank's
chunks, against the one-process op:

  - Lighthouse: identical entries; float32 output and gradients within the
    tolerance rule (tolerances.py) against the float64 one-process op with
    the same selection, the stock error being the float32 one-process op's;
    float64 within FLOAT64_RTOL; the spill rows at the start of each of this
    rank's chunks (after the first) are present: the output there is far
    from what the chunk's scatter alone gives.
  - Dense: causal SDPA over the whole sequence, same rule.
  - With 4 ranks, also CP=2 on the two sub-groups {0,1} and {2,3}.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/python/cp_worker.py
    ... cp_worker.py --device cuda --backends flash,efficient,cudnn --dtypes bfloat16
    ... cp_worker.py --peer-failure exit|stall   (two processes started by hand)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The source package unless the tests run against the installed one.
PACKAGE = [] if os.environ.get("LIGHTHOUSE_TEST_INSTALLED") == "1" else [HERE.parents[1] / "python"]
for path in PACKAGE + [HERE]:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import lighthouse  # noqa: E402,F401
from lighthouse import cp  # noqa: E402
from common import Case, inputs, randn_like  # noqa: E402
from cp_common import chunk_geometry, spill_reach  # noqa: E402
from tolerances import assert_within_rule  # noqa: E402
import oracle  # noqa: E402

LIGHTHOUSE_CASES = {  # world size -> whole-sequence cases whose 2W chunks hold whole tiles
    1: [Case(L=3, p=4, top_k=256, N=4096, B=1, H=2, H_kv=1, d=64)],
    2: [Case(L=4, p=2, top_k=512, N=4096, B=2, H=2, H_kv=1, d=16)],
    4: [Case(L=3, p=2, top_k=1024, N=4096, B=1, H=4, H_kv=2, d=8)],
}
DENSE_CASES = {
    1: [Case(L=2, p=2, top_k=128, N=512, B=1, H=4, H_kv=2, d=64)],
    2: [Case(L=2, p=2, top_k=128, N=96, B=2, H=4, H_kv=2, d=16)],
    4: [Case(L=2, p=2, top_k=128, N=128, B=1, H=2, H_kv=1, d=8)],
}
STOCK = {"auto": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
         "cudnn": SDPBackend.CUDNN_ATTENTION}


class Checker:
    def __init__(self, rank: int):
        self.rank, self.count, self.worst = rank, 0, {}

    def rule(self, name, actual, reference, stock, kind):
        info = assert_within_rule(f"rank {self.rank} {name}", actual, reference, stock, kind)
        self.count += 1
        key = f"{actual.dtype} {kind}".replace("torch.", "")
        ratio = info["err"] / info["bound"] if info["bound"] > 0 else 0.0
        # Also in ulps of the largest reference value: eps * max|ref|.
        ulps = info["err"] / (torch.finfo(actual.dtype).eps * reference.abs().max().item())
        old_ratio, old_ulps = self.worst.get(key, (0.0, 0.0))
        self.worst[key] = (max(old_ratio, ratio), max(old_ulps, ulps))

    def equal(self, name, a, b):
        assert torch.equal(a, b), f"rank {self.rank} {name}: not identical"
        self.count += 1


def run(fn, q, k, v, go):
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    out = fn(*leaves)
    return [out.detach(), *torch.autograd.grad(out, leaves, go)]


def check_lighthouse(ch: Checker, case: Case, group, device, backend: str, dtypes, seed: int):
    r, W = dist.get_rank(group), dist.get_world_size(group)
    q, k, v = inputs(dataclasses.replace(case, dtype=torch.float64), seed)  # CPU: the float64 reference runs there
    go = randn_like(torch.empty(case.B, case.N, case.H, case.d, dtype=torch.float64), seed + 1)
    sh = lambda x, dt, dim=1: cp.shard(x, r, W, dim).to(device, dt)  # noqa: E731
    cfg = case.config
    tag = f"lighthouse W={W} {case} {backend}"
    for dt in dtypes:
        q_, k_, v_, go_ = (x.to(device, dt) for x in (q, k, v, go))
        entries = lighthouse.select(q_, k_, *cfg)
        ch.equal(f"{tag} {dt} entries", cp.select(sh(q, dt), sh(k, dt), *cfg, group=group).cpu(),
                 cp.shard(entries.cpu(), r, W, 2))
        ref = run(lambda a, b, c: lighthouse.attention(a, b, c, *cfg, entries=entries.cpu()), q, k, v, go)
        # The stock error: the one-process op in dt (float64 needs none, see tolerances.py).
        stock = (None if dt == torch.float64 else
                 run(lambda a, b, c: lighthouse.attention(a, b, c, *cfg, backend=backend), q_, k_, v_, go_))
        got = run(lambda a, b, c: cp.attention(a, b, c, *cfg, group=group, backend=backend),
                  sh(q, dt), sh(k, dt), sh(v, dt), sh(go, dt))
        got = [x.cpu() for x in got]
        for i, name in enumerate(("out", "dq", "dk", "dv")):
            ch.rule(f"{tag} {name}", got[i], cp.shard(ref[i], r, W),
                    None if stock is None else cp.shard(stock[i].cpu(), r, W), "out" if i == 0 else "grad")
        if dt == torch.float64:
            continue
        # The spill: at the start of each of this rank's chunks after the
        # first, the output minus what the chunk's own scatter gives is the
        # previous chunk's contribution; it is far above the tolerance. The
        # chunk's own scatter of the one-device og (oracle, float64, CPU):
        cg = chunk_geometry(case.N, case.L, case.p, case.top_k, W)
        n, R = cg.N, spill_reach(cg)
        og = oracle.causal_sdpa(*oracle.gather(q, k, v, entries.cpu(), *cfg))
        for a, c in enumerate((r, 2 * W - 1 - r)):
            if c == 0:
                continue
            e_c = lighthouse.select(q_[:, c * n:(c + 1) * n], k_[:, c * n:(c + 1) * n], cg.L, cg.p, cg.top_k)
            alone = torch.ops.lighthouse._cp_scatter(og[:, :, c * cg.S:(c + 1) * cg.S], e_c.cpu(), n, cg.L, cg.p,
                                                     cg.top_k, None)
            mine = got[0][:, a * n:a * n + R].double()
            err = (mine - ref[0][:, c * n:c * n + R]).abs().max().item()
            spill = (mine - alone[:, :R]).abs().max().item()
            assert spill > 100 * err and spill > 1e-2, f"rank {r} {tag} chunk {c}: spill {spill:.3e} vs err {err:.3e}"
            ch.count += 1


def check_dense(ch: Checker, case: Case, group, device, backend: str, dtypes, seed: int):
    r, W = dist.get_rank(group), dist.get_world_size(group)
    q, k, v = inputs(dataclasses.replace(case, dtype=torch.float64), seed)  # CPU: the float64 reference runs there
    go = randn_like(torch.empty(case.B, case.N, case.H, case.d, dtype=torch.float64), seed + 1)
    g = case.H // case.H_kv

    def sdpa(a, b, c):
        a, b, c = a.transpose(1, 2), b.repeat_interleave(g, 2).transpose(1, 2), c.repeat_interleave(g, 2).transpose(1, 2)
        return torch.nn.functional.scaled_dot_product_attention(a, b, c, is_causal=True).transpose(1, 2)

    def stock_sdpa(a, b, c):
        if STOCK[backend] is None:
            return sdpa(a, b, c)
        with sdpa_kernel([STOCK[backend]]):
            return sdpa(a, b, c)

    ref = run(sdpa, q, k, v, go)
    tag = f"dense W={W} {case} {backend}"
    for dt in dtypes:
        stock = None if dt == torch.float64 else run(stock_sdpa, *(x.to(device, dt) for x in (q, k, v, go)))
        sh = lambda x: cp.shard(x, r, W).to(device, dt)  # noqa: E731
        got = run(lambda a, b, c: cp.dense_attention(a, b, c, group=group, backend=backend),
                  sh(q), sh(k), sh(v), sh(go))
        for i, name in enumerate(("out", "dq", "dk", "dv")):
            ch.rule(f"{tag} {name}", got[i].cpu(), cp.shard(ref[i], r, W),
                    None if stock is None else cp.shard(stock[i].cpu(), r, W), "out" if i == 0 else "grad")


def peer_failure(mode: str) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=5))
    if dist.get_rank() != 0:
        if mode == "stall":
            time.sleep(60)
        os._exit(0)
    q = torch.randn(1, 64, 2, 8)
    start = time.monotonic()
    try:
        cp.dense_attention(q, q, q)
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        assert "lighthouse dist: CP attention: all-gather of K and V failed on rank 0 of 2" in msg, msg
        print(f"cp_worker: peer failure ({mode}) caught after {time.monotonic() - start:.1f} s: {msg}", flush=True)
        os._exit(0)
    print("cp_worker: the collective with a dead peer did not fail", flush=True)
    os._exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", default="auto")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--peer-failure", choices=["exit", "stall"])
    args = ap.parse_args()
    if args.peer_failure:
        peer_failure(args.peer_failure)
    device = torch.device(args.device)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=120), device_id=device)
    else:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    torch.manual_seed(0)
    W, rank = dist.get_world_size(), dist.get_rank()
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    ch = Checker(rank)
    for backend in args.backends.split(","):
        for i, case in enumerate(LIGHTHOUSE_CASES[W]):
            check_lighthouse(ch, case, None, device, backend, dtypes, 100 + i)
        for i, case in enumerate(DENSE_CASES[W]):
            check_dense(ch, case, None, device, backend, dtypes, 200 + i)
        if W == 4:  # CP=2 on the sub-groups {0, 1} and {2, 3} (cp-fastest layout, dp=2)
            groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
            mine = groups[rank // 2]
            for i, case in enumerate(LIGHTHOUSE_CASES[2]):
                check_lighthouse(ch, case, mine, device, backend, dtypes, 300 + i + rank // 2)
    dist.barrier()
    worst = ", ".join(f"{k} {r:.2f} ({u:.1f} ulp of max|ref|)" for k, (r, u) in sorted(ch.worst.items()))
    sys.stdout.write(f"cp_worker: ok rank {rank} of {W}: {ch.count} checks; worst err/bound: {worst}\n")
    sys.stdout.flush()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
