"""TESTING.md item 5: forward and backward are deterministic bit for bit.

Repeated 10 times on CPU (50 on GPU, elsewhere), and across intra-op thread
counts (torch.set_num_threads 1, 2, 3): the CPU kernels split work over
(row, head, tile / chunk) items that never share an output, and the stock CPU
SDPA kernels (flash and math) were found deterministic across thread counts
too, so the whole op must be.
"""

from __future__ import annotations

import pytest
import torch

from common import Case, forward_backward, inputs, randn_like, select

REPEATS = 10
CASES = [
    (Case(3, 4, 256, 4096 + 37, B=2, H=4, H_kv=2, d=32), "auto", "norm"),
    (Case(3, 2, 512, 2048 + 5, B=1, H=4, H_kv=1, d=64, dtype=torch.bfloat16), "auto", "norm"),
    (Case(2, 4, 256, 1024, B=2, H=2, H_kv=2, d=16, dtype=torch.float16), "math", "norm"),
    (Case(3, 2, 256, 1024 + 8, B=1, H=2, H_kv=1, d=16), "auto", "dilated"),
]


def run(case, backend, scorer, seed=61):
    q, k, v = inputs(case, seed, requires_grad=True)
    go = randn_like(torch.empty(case.B, case.N, case.H, case.d, dtype=case.dtype), seed + 1)
    out, grads = forward_backward(q, k, v, case, go, backend=backend, scorer=scorer)
    entries = select(q.detach(), k.detach(), case, v=v.detach(), scorer=scorer)
    return [entries, out, *grads]


def assert_identical(a, b, what):
    names = ("entries", "out", "dq", "dk", "dv")
    for name, x, y in zip(names, a, b):
        assert x.isfinite().all(), f"{what}: {name} not finite"
        assert torch.equal(x, y), f"{what}: {name} differs, max |diff| {(x.double() - y.double()).abs().max():.3e}"


@pytest.mark.parametrize("case,backend,scorer", CASES, ids=lambda x: str(x))
def test_repeated_runs_are_bit_identical(case, backend, scorer):
    first = run(case, backend, scorer)
    for i in range(REPEATS - 1):
        assert_identical(first, run(case, backend, scorer), f"repeat {i + 1}")


@pytest.mark.parametrize("case,backend,scorer", CASES, ids=lambda x: str(x))
def test_thread_count_does_not_change_results(case, backend, scorer):
    results = {}
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        results[threads] = run(case, backend, scorer)
    for threads in (2, 3):
        assert_identical(results[1], results[threads], f"{threads} threads vs 1")
