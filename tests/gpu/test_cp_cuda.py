"""Context parallelism on one GPU (run by scripts/gpu-check.sh test).

- The CUDA kernels' CP extension: a chunk's scatter with the previous chunk's
  spill rows, and its backward with the next chunk's first gradient rows,
  equal the whole sequence's CUDA scatter bit for bit (bf16, fp16, fp32), and
  the CPU twin's.
- CP with one rank on NCCL (W = 1: the rank holds chunks 0 and 1, so the
  off-diagonal block, the log-sum-exp merge, the spill between the two
  chunks and the K/V gradient reduction all run): Lighthouse and dense CP
  attention vs the one-device op, with each CUDA SDPA backend (flash,
  efficient, cuDNN), bf16, within the tolerance rule (tests/python/cp_worker.py).
Two-GPU runs are in test_cp_2gpu.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1] / "python"
sys.path.insert(0, str(TESTS))

import lighthouse  # noqa: E402,F401
from lighthouse import cp  # noqa: E402,F401  (registers torch.ops.lighthouse._cp_scatter*)
from cp_common import chunk_geometry, spill_reach, spill_rows  # noqa: E402
from cp_launch import torchrun  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# B, N, H, d, L, p, top_k, W, dtype
CASES = [
    (1, 16384, 4, 128, 3, 4, 1024, 2, torch.bfloat16),
    (2, 8192, 2, 64, 4, 2, 1024, 4, torch.float16),
    (1, 4096, 2, 32, 2, 8, 256, 1, torch.float32),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"N{c[1]}-L{c[4]}-p{c[5]}-k{c[6]}-W{c[7]}-{c[8]}".replace("torch.", ""))
def test_chunk_scatter_cuda_is_the_whole_scatter(case):
    B, N, H, d, L, p, top_k, W, dt = case
    g = torch.Generator().manual_seed(7)
    q, k = (torch.randn(B, N, H, d, generator=g).to(dt).cuda() for _ in range(2))
    entries = lighthouse.select(q, k, L, p, top_k)
    cg = chunk_geometry(N, L, p, top_k, W)
    n, S_c, R = cg.N, cg.S, spill_reach(cg)
    cfg = (cg.L, cg.p, cg.top_k)
    og = torch.randn(B, H, entries.shape[-1], d, generator=g).to(dt).cuda()
    dout = torch.randn(B, N, H, d, generator=g).to(dt).cuda()
    whole = torch.ops.lighthouse._cp_scatter(og, entries, N, L, p, top_k, None)  # the one-device CUDA stage
    dog = torch.ops.lighthouse._cp_scatter_backward(dout, entries, N, L, p, top_k, None)
    for c in range(2 * W):
        e_c = lighthouse.select(q[:, c * n:(c + 1) * n], k[:, c * n:(c + 1) * n], *cfg)
        e_prev = lighthouse.select(q[:, (c - 1) * n:c * n], k[:, (c - 1) * n:c * n], *cfg) if c > 0 else None
        prev = (spill_rows(og[:, :, (c - 1) * S_c:c * S_c], e_prev, cg) if c > 0
                else torch.zeros(B, H, L, d, dtype=dt, device="cuda"))
        og_c = og[:, :, c * S_c:(c + 1) * S_c]
        out = torch.ops.lighthouse._cp_scatter(og_c, e_c, n, *cfg, prev)
        assert torch.equal(out, whole[:, c * n:(c + 1) * n]), f"forward, chunk {c}"
        assert torch.equal(out.cpu(), torch.ops.lighthouse._cp_scatter(og_c.cpu(), e_c.cpu(), n, *cfg, prev.cpu()))
        nxt = dout[:, (c + 1) * n:(c + 1) * n + R] if c + 1 < 2 * W else torch.zeros_like(dout[:, :R])
        back = torch.ops.lighthouse._cp_scatter_backward(dout[:, c * n:(c + 1) * n], e_c, n, *cfg, nxt)
        assert torch.equal(back, dog[:, :, c * S_c:(c + 1) * S_c]), f"backward, chunk {c}"
        assert torch.equal(back.cpu(), torch.ops.lighthouse._cp_scatter_backward(
            dout[:, c * n:(c + 1) * n].cpu(), e_c.cpu(), n, *cfg, nxt.cpu()))


def test_cp_one_rank_nccl_all_backends():
    r = torchrun(1, [str(TESTS / "cp_worker.py"), "--device", "cuda", "--backends", "auto,flash,efficient,cudnn",
                     "--dtypes", "bfloat16"], timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "cp_worker: ok rank 0 of 1" in out, out[-6000:]
    print([line for line in out.splitlines() if line.startswith("cp_worker")])


def test_bench_cp_one_rank_nccl():
    """`lighthouse bench op --cp 1` under torchrun: the C++ NCCL process group
    (csrc/dist) and the CP op, validated against the one-device op before timing."""
    import os
    build = Path(os.environ.get("LIGHTHOUSE_LIBRARY", "build/liblighthouse_ops.so")).parent
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                        "--no-python", str(build / "lighthouse"), "bench", "op", "--cp", "1", "--seq-lens", "65536",
                        "--repeats", "3"], capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "cp=1" in out, out[-6000:]
    print(out[-3000:])
