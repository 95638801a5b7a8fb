"""Small helpers shared by the op tests: configs, seeded inputs, op calls."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oracle import Geometry


@dataclass(frozen=True)
class Case:
    """One op call: config (L, p, top_k) and input shape (B, N, H, H_kv, d)."""

    L: int
    p: int
    top_k: int
    N: int
    B: int = 1
    H: int = 2
    H_kv: int = 1
    d: int = 32
    dtype: torch.dtype = torch.float32

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.N, self.L, self.p, self.top_k)

    @property
    def config(self) -> tuple[int, int, int]:
        return (self.L, self.p, self.top_k)

    def __str__(self) -> str:
        dt = str(self.dtype).replace("torch.", "")
        return (
            f"L{self.L}-p{self.p}-k{self.top_k}-N{self.N}-B{self.B}-H{self.H}x{self.H_kv}-d{self.d}-{dt}"
        )


def min_n(L: int, p: int, top_k: int) -> int:
    return top_k * p ** (L - 1)


def inputs(case: Case, seed: int, requires_grad: bool = False):
    """Seeded q [B, N, H, d], k and v [B, N, H_kv, d] in case.dtype (drawn in float64)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(case.B, case.N, case.H, case.d)] + [(case.B, case.N, case.H_kv, case.d)] * 2
    out = [torch.randn(s, generator=gen, dtype=torch.float64).to(case.dtype) for s in shapes]
    if requires_grad:
        for t in out:
            t.requires_grad_()
    return out


def randn_like(x: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype)


def attention(q, k, v, case: Case, **kw):
    return torch.ops.lighthouse.attention(q, k, v, case.L, case.p, case.top_k, **kw)


def select(q, k, case: Case, **kw):
    return torch.ops.lighthouse.select(q, k, case.L, case.p, case.top_k, **kw)


def forward_backward(q, k, v, case: Case, grad_out, **kw):
    """Output and (dq, dk, dv) of the op for leaf tensors q, k, v."""
    out = attention(q, k, v, case, **kw)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    return out.detach(), grads
