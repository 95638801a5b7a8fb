"""Context parallelism over two GPUs with NCCL (TESTING.md item 20). NEEDS 2
GPUS: on a machine with fewer the tests are skipped with that reason (never
reported as passed).

- tests/python/cp_worker.py under torchrun, one process per GPU: CP=2
  Lighthouse and dense attention vs the one-device op (identical entries,
  outputs and gradients within the tolerance rule, spill rows at every chunk
  boundary), bf16 with each CUDA SDPA backend.
- Deterministic mode: two runs of the same CP=2 forward+backward are bit-identical.
- `lighthouse bench op --cp 2` (the C++ NCCL process groups), validated
  against the one-device op before timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1] / "python"
sys.path.insert(0, str(TESTS))

from cp_launch import env, torchrun  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2,
                                reason=f"needs 2 GPUs for CP=2 over NCCL; this machine has {torch.cuda.device_count()}")

DETERMINISM = r"""
import os, sys, torch, torch.distributed as dist
sys.path.insert(0, os.environ["LH_TESTS"])
import lighthouse
from lighthouse import cp
torch.use_deterministic_algorithms(True)
rank = int(os.environ["LOCAL_RANK"]); torch.cuda.set_device(rank)
dist.init_process_group("nccl", device_id=torch.device("cuda", rank))
g = torch.Generator().manual_seed(5)
q, k, v, go = (torch.randn(1, 32768, 4, 128, generator=g).to(torch.bfloat16) for _ in range(4))
sh = lambda x: cp.shard(x, rank, 2).cuda().requires_grad_()
outs = []
for _ in range(2):
    a, b, c = sh(q), sh(k), sh(v)
    o = cp.attention(a, b, c, 3, 4, 1024)
    grads = torch.autograd.grad(o, (a, b, c), cp.shard(go, rank, 2).cuda())
    outs.append([o.detach(), *grads])
assert all(torch.equal(x, y) for x, y in zip(*outs)), "CP=2 reruns differ"
print(f"determinism ok rank {rank}", flush=True)
dist.destroy_process_group()
"""


def test_cp2_nccl_matches_one_device():
    r = torchrun(2, [str(TESTS / "cp_worker.py"), "--device", "cuda", "--backends", "auto,flash,efficient,cudnn",
                     "--dtypes", "bfloat16"], timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert out.count("cp_worker: ok") == 2, out[-8000:]


def test_cp2_nccl_deterministic_reruns(tmp_path):
    script = tmp_path / "determinism.py"
    script.write_text(DETERMINISM)
    e = env()
    e["LH_TESTS"] = str(TESTS)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        str(script)], env=e, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert out.count("determinism ok") == 2, out[-8000:]


def test_bench_cp2_nccl():
    build = Path(os.environ.get("LIGHTHOUSE_LIBRARY", "build/liblighthouse_ops.so")).parent
    r = torchrun(2, [str(build / "lighthouse"), "bench", "op", "--cp", "2", "--seq-lens", "131072,524288",
                     "--top-k", "4096", "--repeats", "5"], timeout=900, no_python=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert "entries identical" in out, out[-8000:]
    print(out[-4000:])
