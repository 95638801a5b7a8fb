"""Small helpers shared by the op tests: configs, seeded inputs, op calls."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import oracle
from oracle import Geometry
from tolerances import assert_within_rule, stock_sdpa


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


def stage_plan(q, k, v, entries, config):
    """The stage ops' plan for int64 `entries` (as from select): int32 entries
    [B, H, S] and inverse map [B, H, P], made (and checked) by _plan."""
    e, inv, *_ = torch.ops.lighthouse._plan(q.detach(), k.detach(), v.detach(), *config, "norm", 4, "auto", entries)
    return e, inv


def stage_gather(q, k, v, plan, config):
    """_gather alone: pool-gather of q, k, v [B, N, heads, d] -> 3 x [B, H, S, d] (no pooled coarse rows)."""
    return torch.ops.lighthouse._gather(q, k, v, *plan, None, None, None, *config)


def stage_scatter(og, plan, seq_len, config):
    """_scatter alone: og [B, H, S, d] -> [B, seq_len, H, d]."""
    return torch.ops.lighthouse._scatter(og, *plan, seq_len, *config)


def forward_backward(q, k, v, case: Case, grad_out, **kw):
    """Output and (dq, dk, dv) of the op for leaf tensors q, k, v."""
    out = attention(q, k, v, case, **kw)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    return out.detach(), grads


def oracle_forward_backward(q, k, v, case, entries, grad_out, dtype, sdpa=oracle.causal_sdpa):
    """The oracle's output and (dq, dk, dv) in `dtype` for a fixed selection."""
    leaves = [x.detach().to(dtype).requires_grad_() for x in (q, k, v)]
    out = oracle.attention(*leaves, *case.config, entries=entries, dtype=dtype, sdpa=sdpa)
    grads = torch.autograd.grad(out, leaves, grad_out.to(dtype))
    return out.detach(), grads


def check_against_oracle(case: Case, seed: int, backend: str = "auto", **kw) -> dict:
    """Seeded inputs for `case`; see check_inputs_against_oracle."""
    q, k, v = inputs(case, seed, requires_grad=True)
    grad_out = randn_like(torch.empty(case.B, case.N, case.H, case.d, dtype=case.dtype), seed + 1)
    return check_inputs_against_oracle(q, k, v, grad_out, case, backend, **kw)


def check_inputs_against_oracle(q, k, v, grad_out, case: Case, backend: str = "auto", **kw) -> dict:
    """Entries exactly as the oracle's; output and gradients of the op (leaves
    q, k, v) within the tolerance rule against the float64 oracle, the stock
    path being the oracle in case.dtype with torch's SDPA for `backend`."""
    entries = select(q.detach(), k.detach(), case, v=v.detach(), **kw)
    assert torch.equal(entries, oracle.select(q.detach(), k.detach(), *case.config, v=v.detach(), **kw))
    out, grads = forward_backward(q, k, v, case, grad_out, backend=backend, **kw)
    ref_out, ref_grads = oracle_forward_backward(q, k, v, case, entries, grad_out, torch.float64)
    stock_out = stock_grads = None
    if case.dtype != torch.float64:
        stock_out, stock_grads = oracle_forward_backward(q, k, v, case, entries, grad_out, case.dtype,
                                                         stock_sdpa(backend))
    report = {"out": assert_within_rule(f"{case} out", out, ref_out, stock_out, "out")}
    for i, name in enumerate(("dq", "dk", "dv")):
        report[name] = assert_within_rule(f"{case} {name}", grads[i], ref_grads[i],
                                          None if stock_grads is None else stock_grads[i], "grad")
    return report
