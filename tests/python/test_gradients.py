"""TESTING.md item 4: gradients.

- gradcheck (float64) on the full op with a fixed selection (entries from
  select), and on each differentiable stage alone (_gather = pool-gather,
  _scatter);
- the adjoint identities <scatter(x), y> == <x, scatter^T(y)> and
  <gather(x), y> == <x, gather^T(y)>, with the transposes taken by autograd;
- every input position receives a non-zero gradient when N is a multiple of
  the padding unit p^(L-1) * T (through v, and through q + k + v together: a
  query that attends only to itself gets no q gradient, by design);
- with padding, the documented exception: positions of a trailing partial
  coarsest span that stays coarse get exactly zero gradient, because that
  entry's shifted output lands past N and is dropped (spec section 6).
"""

from __future__ import annotations

import pytest
import torch

import oracle
from common import Case, attention, inputs, randn_like, select, stage_gather, stage_plan, stage_scatter

F64 = torch.float64


@pytest.fixture
def one_thread():
    """gradcheck makes thousands of tiny op calls; with several intra-op threads
    the pool hand-offs dominate (10x slower on a loaded 2-core machine).
    conftest.py restores the thread count afterwards."""
    torch.set_num_threads(1)


def f64(case: Case) -> Case:
    return Case(case.L, case.p, case.top_k, case.N, case.B, case.H, case.H_kv, case.d, F64)


@pytest.mark.parametrize(
    "case,fast",
    [
        (Case(2, 2, 128, 256, B=1, H=1, H_kv=1, d=2, dtype=F64), False),
        (Case(2, 2, 128, 256 + 3, B=2, H=4, H_kv=2, d=4, dtype=F64), True),
        (Case(3, 2, 128, 512, B=1, H=4, H_kv=1, d=3, dtype=F64), True),
        (Case(2, 4, 256, 1024 + 5, B=1, H=2, H_kv=1, d=4, dtype=F64), True),
    ],
    ids=lambda x: str(x),
)
def test_gradcheck_full_op_fixed_selection(case, fast, one_thread):
    q, k, v = inputs(case, seed=41, requires_grad=True)
    entries = select(q.detach(), k.detach(), case)
    for backend in ("auto", "math"):
        def fn(q_, k_, v_):
            return attention(q_, k_, v_, case, entries=entries, backend=backend)

        assert torch.autograd.gradcheck(fn, (q, k, v), fast_mode=fast, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, 128, 256 + 1, B=1, H=2, H_kv=1, d=3, dtype=F64),
        Case(3, 2, 128, 512, B=2, H=2, H_kv=2, d=2, dtype=F64),
    ],
    ids=str,
)
def test_gradcheck_stages(case, one_thread):
    q, k, v = inputs(case, seed=42, requires_grad=True)
    entries = oracle.select(q.detach(), k.detach(), *case.config)
    plan = stage_plan(q, k, v, entries, case.config)
    fast = case.B * case.N * case.H * case.d > 1024

    def gather(q_, k_, v_):
        return stage_gather(q_, k_, v_, plan, case.config)

    assert torch.autograd.gradcheck(gather, (q, k, v), fast_mode=fast)

    og = randn_like(torch.empty(case.B, case.H, case.geometry.S, case.d, dtype=F64), seed=43).requires_grad_()

    def scatter(og_):
        return stage_scatter(og_, plan, case.N, case.config)

    assert torch.autograd.gradcheck(scatter, (og,), fast_mode=fast)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(
    "case",
    [Case(3, 4, 256, 8192 + 11, B=2, H=4, H_kv=2, d=16), Case(4, 2, 128, 1024, B=1, H=2, H_kv=1, d=8)],
    ids=lambda c: str(c).rsplit("-", 1)[0],
)
def test_adjoint_identities(case, dtype):
    """<A x, y> == <x, A^T y> for scatter and gather, A^T from the op's backward."""
    case = Case(case.L, case.p, case.top_k, case.N, case.B, case.H, case.H_kv, case.d, dtype)
    q, k, v = inputs(case, seed=44, requires_grad=True)
    plan = stage_plan(q, k, v, select(q.detach(), k.detach(), case), case.config)
    rtol = 1e-12 if dtype == F64 else 1e-5

    og = randn_like(torch.empty(case.B, case.H, case.geometry.S, case.d, dtype=dtype), seed=45).requires_grad_()
    out = stage_scatter(og, plan, case.N, case.config)
    y = randn_like(out, seed=46)
    (og_t,) = torch.autograd.grad(out, og, y)
    lhs, rhs = (out.double() * y.double()).sum(), (og.double() * og_t.double()).sum()
    assert abs(lhs - rhs) <= rtol * (out.double().abs() * y.double().abs()).sum(), (lhs.item(), rhs.item())

    gathered = stage_gather(q, k, v, plan, case.config)
    ys = [randn_like(t, seed=47 + i) for i, t in enumerate(gathered)]
    grads = torch.autograd.grad(gathered, (q, k, v), ys)
    lhs = sum((a.double() * b.double()).sum() for a, b in zip(gathered, ys))
    rhs = sum((a.double() * b.double()).sum() for a, b in zip((q, k, v), grads))
    scale = sum((a.double().abs() * b.double().abs()).sum() for a, b in zip(gathered, ys))
    assert abs(lhs - rhs) <= rtol * scale, (lhs.item(), rhs.item())


def per_position_norms(grads):
    """(dq, dk, dv) -> per (b, t) norms of dv, and of dq, dk, dv together."""
    dq, dk, dv = (g.double() for g in grads)
    v_norm = dv.pow(2).sum((-1, -2)).sqrt()
    all_norm = (dq.pow(2).sum((-1, -2)) + dk.pow(2).sum((-1, -2)) + dv.pow(2).sum((-1, -2))).sqrt()
    return v_norm, all_norm


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, 128, 256, B=2, H=2, H_kv=1, d=8),
        Case(3, 4, 256, 4096 * 2, B=1, H=4, H_kv=1, d=16),
        Case(4, 2, 512, 4096 * 2, B=1, H=2, H_kv=2, d=8, dtype=F64),
        Case(3, 8, 128, 8192, B=1, H=2, H_kv=1, d=8),
    ],
    ids=str,
)
def test_every_position_gets_gradient(case):
    g = case.geometry
    assert g.N_pad == case.N, "this property needs N to be a multiple of p^(L-1) * T"
    q, k, v = inputs(case, seed=48, requires_grad=True)
    out = attention(q, k, v, case)
    grads = torch.autograd.grad(out, (q, k, v), randn_like(out, seed=49))
    v_norm, all_norm = per_position_norms(grads)
    assert bool((v_norm > 0).all()), f"positions without v gradient: {(v_norm == 0).nonzero()[:10].tolist()}"
    assert bool((all_norm > 0).all())
    assert all(bool(x.isfinite().all()) for x in grads)


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 8, 128, 1024 + 5, B=1, H=2, H_kv=1, d=8),
        Case(3, 4, 128, 2048 + 10, B=2, H=2, H_kv=2, d=8),
        Case(2, 2, 256, 512 + 3, B=1, H=2, H_kv=1, d=8),
    ],
    ids=str,
)
def test_padded_tail_gets_no_gradient_when_kept_coarse(case):
    """Documents a consequence of the spec (not a bug): with N not a multiple of
    the padding unit, the last coarsest span [a, a + c) is partial (a < N < a + c).
    If it stays coarse, its entry's output is shifted to [a + c - 1, ...], all past
    N and dropped, and it is the last entry in causal order (nothing attends to
    it), so positions [a, N) get exactly zero gradient. Tail tokens are scaled
    down so that the cascade keeps that span coarse."""
    g = case.geometry
    c = g.span(case.L - 1)
    a = (case.N // c) * c
    assert a < case.N < a + c
    q, k, v = inputs(case, seed=50)
    for x in (q, k):
        x[:, a:] *= 1e-3
    leaves = [x.requires_grad_() for x in (q, k, v)]
    out = attention(*leaves, case)
    go = randn_like(out, seed=51)
    grads = torch.autograd.grad(out, leaves, go)
    entries = select(q.detach(), k.detach(), case)
    last_coarsest = g.offset(case.L - 1) + case.N // c
    assert bool((entries[..., -1] == last_coarsest).all()), "the tail span must be kept coarse and last in order"

    _, all_norm = per_position_norms(grads)
    zero = (all_norm == 0).nonzero()
    expected = torch.cartesian_prod(torch.arange(case.B), torch.arange(a, case.N))
    assert torch.equal(zero, expected), f"zero-gradient positions {zero.tolist()} != [{a}, {case.N})"

    # The float64 oracle agrees exactly on which positions get no gradient.
    ref = [x.detach().double().requires_grad_() for x in leaves]
    ref_out = oracle.attention(*ref, *case.config, entries=entries)
    ref_grads = torch.autograd.grad(ref_out, ref, go.double())
    _, ref_norm = per_position_norms(ref_grads)
    assert torch.equal((ref_norm == 0).nonzero(), expected)


def test_fixed_selection_equals_computed_selection():
    """entries=select(...) reproduces the op's own selection: same output and
    gradients bit for bit, and no gradient flows into the entries."""
    case = Case(3, 2, 256, 1024 + 7, B=2, H=4, H_kv=1, d=16)
    q, k, v = inputs(case, seed=52, requires_grad=True)
    out = attention(q, k, v, case)
    go = randn_like(out, seed=53)
    grads = torch.autograd.grad(out, (q, k, v), go)
    entries = select(q.detach(), k.detach(), case)
    assert not entries.requires_grad
    out_fixed = attention(q, k, v, case, entries=entries)
    grads_fixed = torch.autograd.grad(out_fixed, (q, k, v), go)
    assert torch.equal(out, out_fixed)
    for a, b in zip(grads, grads_fixed):
        assert torch.equal(a, b)
