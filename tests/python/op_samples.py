"""Sample calls of every registered op, public and internal, for
torch.library.opcheck (tests/python/test_opcheck.py on CPU,
tests/gpu/test_compile_cuda.py on CUDA).

Grouped-query heads (H=4, H_kv=2) and a padded N (515 tokens for
levels=3, pool=2, top_k=128: padded to 516 inside). Inputs of the
differentiable ops require grad, so opcheck also traces their backward; the
backward ops get plain inputs (they are first order only).
"""

from __future__ import annotations

import torch

CONFIG = (3, 2, 128)  # levels, pool, top_k: smallest valid N is 512
B, N, H, H_KV, D = 2, 515, 4, 2, 16
# Two pooled levels (spans of 16 and 64 tokens: Geometry::pool_first), one row.
CONFIG_TWO = (4, 4, 128)  # smallest valid N is 8192
N_TWO = 8192 + 3


def _randn(shape, gen, device, dtype, requires_grad=False):
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    return x.requires_grad_(requires_grad)


def samples(device: str, dtype: torch.dtype, seed: int = 7):
    """[(id, op overload, args, kwargs)] covering every op of torch.ops.lighthouse."""
    gen = torch.Generator().manual_seed(seed)
    q = _randn((B, N, H, D), gen, device, dtype, True)
    k = _randn((B, N, H_KV, D), gen, device, dtype, True)
    v = _randn((B, N, H_KV, D), gen, device, dtype, True)
    ops = torch.ops.lighthouse
    with torch.no_grad():
        entries = ops.select(q, k, *CONFIG)
        e, inv, cq, ck, cv = ops._plan(q, k, v, *CONFIG, "norm", 4, "auto", None)
        qg = ops._gather(q, k, v, e, inv, cq, ck, cv, *CONFIG)[0]
    og = _randn(qg.shape, gen, device, dtype, True)
    grad_sub = _randn(qg.shape, gen, device, dtype)
    grad_out = _randn(q.shape, gen, device, dtype)
    out = [
        ("attention", ops.attention.default, (q, k, v, *CONFIG), {}),
        ("attention-entries", ops.attention.default, (q, k, v, *CONFIG), {"entries": entries}),
        ("select", ops.select.default, (q, k, *CONFIG), {}),
        ("plan", ops._plan.default, (q, k, v, *CONFIG, "norm", 4, "auto", None), {}),
        ("plan-entries", ops._plan.default, (q, k, v, *CONFIG, "norm", 4, "auto", entries), {}),
        ("gather-pooled", ops._gather.default, (q, k, v, e, inv, cq, ck, cv, *CONFIG), {}),
        ("gather", ops._gather.default, (q, k, v, e, inv, None, None, None, *CONFIG), {}),
        ("gather_backward-q", ops._gather_backward.default, (grad_sub, inv, N, H, *CONFIG), {}),
        ("gather_backward-kv", ops._gather_backward.default, (grad_sub, inv, N, H_KV, *CONFIG), {}),
        ("scatter", ops._scatter.default, (og, e, inv, N, *CONFIG), {}),
        ("scatter_backward", ops._scatter_backward.default, (grad_out, e, inv, *CONFIG), {}),
    ]
    q2 = _randn((1, N_TWO, H, D), gen, device, dtype, True)
    k2 = _randn((1, N_TWO, H_KV, D), gen, device, dtype, True)
    v2 = _randn((1, N_TWO, H_KV, D), gen, device, dtype, True)
    with torch.no_grad():
        e2, inv2, cq2, ck2, cv2 = ops._plan(q2, k2, v2, *CONFIG_TWO, "norm", 4, "auto", None)
    out += [
        ("plan-two-levels", ops._plan.default, (q2, k2, v2, *CONFIG_TWO, "norm", 4, "auto", None), {}),
        ("gather-pooled-two-levels", ops._gather.default, (q2, k2, v2, e2, inv2, cq2, ck2, cv2, *CONFIG_TWO), {}),
    ]
    if dtype == torch.float32:
        # The dilated scorer (two stock SDPA calls inside _plan / select).
        out += [
            ("attention-dilated", ops.attention.default, (q, k, v, *CONFIG), {"scorer": "dilated", "dilation": 4}),
            ("select-dilated", ops.select.default, (q, k, *CONFIG), {"scorer": "dilated", "dilation": 4, "v": v}),
        ]
    return out
