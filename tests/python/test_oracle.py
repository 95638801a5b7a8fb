"""TESTING.md item 1: the op against the independent oracle (oracle.py).

Emitted entries must be EXACTLY equal (same indices, same order) over the
whole config grid L in {2, 3, 4} x p in {2, 4, 8} x top_k in {128, 256, 512},
at the smallest valid N and with padding; batch, heads, head dims, GQA ratios
and dtypes are spread over the grid. Outputs and gradients are checked against
the float64 oracle under the tolerance rule (tolerances.py) on a subset that
covers every axis value at least once, in float64 and float32.
"""

from __future__ import annotations

import zlib

import pytest
import torch

import oracle
from common import Case, check_against_oracle, inputs, min_n, randn_like, select, stage_gather, stage_plan, stage_scatter
from tolerances import assert_within_rule

GRID = [(L, p, k) for L in (2, 3, 4) for p in (2, 4, 8) for k in (128, 256, 512)]
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float32, torch.float16)
MAX_ELEMENTS = 2**22  # per input tensor; the largest configs fall back to small B, H, d


def grid_case(i: int, L: int, p: int, top_k: int, N: int | None = None) -> Case:
    """Spreads batch 1-2, H_kv 1-2, GQA ratio 1/2/4, d 32/64/128 and dtypes over the grid."""
    N = N if N is not None else min_n(L, p, top_k)
    ratio, d = (1, 2, 4)[i % 3], (32, 64, 128)[(i // 3) % 3]
    B, H_kv = 1 + (i // 9 + i) % 2, 1 + (i // 2) % 2
    while N * B * ratio * H_kv * d > MAX_ELEMENTS and (B > 1 or H_kv > 1 or d > 32 or ratio > 1):
        if B > 1:
            B = 1
        elif H_kv > 1:
            H_kv = 1
        elif d > 32:
            d //= 2
        else:
            ratio //= 2
    return Case(L, p, top_k, N, B=B, H=ratio * H_kv, H_kv=H_kv, d=d, dtype=DTYPES[i % len(DTYPES)])


GRID_CASES = [grid_case(i, *c) for i, c in enumerate(GRID)]
# Lengths that need padding: a few tokens past a multiple of the padding unit
# p^(L-1) * T, so that the last coarsest span is partial.
PADDED_CASES = [
    grid_case(i, L, p, k, N=min_n(L, p, k) * m + extra)
    for i, (L, p, k, m, extra) in enumerate(
        [
            (2, 2, 128, 1, 1),
            (2, 8, 512, 1, 37),
            (3, 2, 256, 2, 3),
            (3, 4, 512, 1, 555),
            (3, 8, 128, 1, 100),
            (4, 2, 512, 1, 17),
            (4, 4, 256, 1, 1000),
            (4, 8, 128, 1, 63),
        ]
    )
]


def check_entries(case: Case, seed: int, **kw) -> torch.Tensor:
    q, k, v = inputs(case, seed)
    got = select(q, k, case, v=v, **kw)
    want = oracle.select(q, k, *case.config, v=v, **kw)
    assert got.dtype == torch.int64
    # As many entries as the oracle's selection emits (S itself is checked
    # against hand-computed values in test_structure.py).
    assert got.shape == want.shape == (case.B, case.H, want.shape[-1])
    if not torch.equal(got, want):
        bad = (got != want).nonzero()
        raise AssertionError(f"{case}: {bad.shape[0]} slots differ, first at {bad[0].tolist()}: "
                             f"op {got[tuple(bad[0])].item()} vs oracle {want[tuple(bad[0])].item()}")
    return got


def test_grid_covers_every_axis_value():
    """The spread above really spreads: each value appears several times."""
    seen = {}
    for c in GRID_CASES:
        for axis, val in (("B", c.B), ("d", c.d), ("ratio", c.H // c.H_kv), ("dtype", c.dtype)):
            seen.setdefault((axis, val), 0)
            seen[(axis, val)] += 1
    for axis, values in (("B", (1, 2)), ("d", (32, 64, 128)), ("ratio", (1, 2, 4)),
                         ("dtype", (torch.float32, torch.float64, torch.bfloat16, torch.float16))):
        for val in values:
            assert seen.get((axis, val), 0) >= 3, (axis, val, seen)


@pytest.mark.parametrize("case", GRID_CASES, ids=str)
def test_entries_grid_smallest_n(case):
    check_entries(case, seed=zlib.crc32(str(case).encode()))


@pytest.mark.parametrize("case", PADDED_CASES, ids=str)
def test_entries_grid_padded(case):
    assert case.geometry.N_pad > case.N
    check_entries(case, seed=7 + case.N)


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, 128, 256, B=2, H=4, H_kv=1, d=16, dtype=torch.float64),
        Case(3, 4, 128, 2048 + 8, B=1, H=2, H_kv=2, d=32, dtype=torch.float64),
        Case(3, 2, 128, 512 + 4, B=1, H=4, H_kv=2, d=8, dtype=torch.float64),
    ],
    ids=str,
)
@pytest.mark.parametrize("dilation", [1, 4])
def test_entries_dilated_scorer(case, dilation):
    """Section 9 scorer. float64 inputs: the op's SDPA and the oracle's differ
    by ~1e-16, far below the fp32 rounding of the scores."""
    check_entries(case, seed=3, scorer="dilated", dilation=dilation)


def test_entries_ties_break_by_smaller_index():
    """Inputs whose norms tie massively (every token a signed permutation of one
    vector, a few tokens scaled up): the order must follow the index rule."""
    case = Case(3, 2, 256, 1024 + 6, B=2, H=2, H_kv=1, d=16)
    gen = torch.Generator().manual_seed(11)
    base = torch.randn(case.d, generator=gen)

    def tied(heads):
        sign = torch.randint(0, 2, (case.B, case.N, heads, case.d), generator=gen) * 2 - 1
        perm = torch.rand(case.B, case.N, heads, case.d, generator=gen).argsort(-1)
        x = base[perm] * sign
        boost = torch.rand(case.B, case.N, heads, 1, generator=gen) < 0.05
        return torch.where(boost, 2 * x, x)

    q, k = tied(case.H), tied(case.H_kv)
    norms = q.norm(dim=-1).flatten()
    assert norms.unique().numel() <= 4, "inputs must tie"
    got = select(q, k, case)
    assert torch.equal(got, oracle.select(q, k, *case.config))


def test_entries_nonfinite_tokens_rank_first():
    """NaN and inf tokens score +inf (NaN ranks as +inf) and must be selected
    like the oracle does; the selection itself stays well defined."""
    case = Case(3, 4, 128, 2048, B=1, H=2, H_kv=1, d=16)
    q, k, _ = inputs(case, seed=5)
    gen = torch.Generator().manual_seed(5)
    for x, head, val in ((q, 0, float("nan")), (k, 0, float("inf")), (q, 1, float("-inf"))):
        pos = torch.randint(0, case.N, (40,), generator=gen)
        x[0, pos, head, 3] = val
    got = select(q, k, case)
    assert torch.equal(got, oracle.select(q, k, *case.config))
    # Fewer than 64 poisoned spans per level: every NaN token of head 0 ranks
    # first at every level, so its own level-0 entry is emitted.
    nan_pos = q[0, :, 0].isnan().any(-1).nonzero().flatten()
    assert nan_pos.numel() > 0 and bool(torch.isin(nan_pos, got[0, 0]).all())


# ----------------------------------------------------------------------------
# Outputs and gradients against the float64 oracle.

# Every value of every axis at least once: L, p, top_k, B, d, GQA ratio, padding.
VALUE_CASES = [
    Case(2, 2, 128, 256, B=2, H=4, H_kv=1, d=32),
    Case(2, 8, 128, 1024 + 13, B=1, H=2, H_kv=2, d=128),
    Case(3, 4, 128, 2048, B=1, H=4, H_kv=2, d=64),
    Case(3, 2, 512, 2048 + 5, B=2, H=1, H_kv=1, d=32),
    Case(4, 2, 256, 2048, B=1, H=2, H_kv=1, d=64),
    Case(4, 4, 128, 8192 + 100, B=1, H=1, H_kv=1, d=32),
    Case(2, 4, 512, 2048, B=2, H=1, H_kv=1, d=32),
    Case(3, 8, 128, 8192, B=1, H=2, H_kv=1, d=32),
]


def test_value_cases_cover_every_axis_value():
    axes = {
        "L": {c.L for c in VALUE_CASES}, "p": {c.p for c in VALUE_CASES}, "top_k": {c.top_k for c in VALUE_CASES},
        "B": {c.B for c in VALUE_CASES}, "d": {c.d for c in VALUE_CASES},
        "ratio": {c.H // c.H_kv for c in VALUE_CASES},
        "padded": {c.geometry.N_pad > c.N for c in VALUE_CASES},
    }
    assert axes == {"L": {2, 3, 4}, "p": {2, 4, 8}, "top_k": {128, 256, 512}, "B": {1, 2}, "d": {32, 64, 128},
                    "ratio": {1, 2, 4}, "padded": {False, True}}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=lambda c: str(c).rsplit("-", 1)[0])
def test_outputs_and_gradients(case, dtype):
    case = Case(case.L, case.p, case.top_k, case.N, case.B, case.H, case.H_kv, case.d, dtype)
    report = check_against_oracle(case, seed=case.N + case.d)
    print(case, report)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_math_backend_against_oracle(dtype):
    check_against_oracle(Case(3, 2, 256, 1024 + 3, B=2, H=2, H_kv=1, d=32, dtype=dtype), seed=21, backend="math")


def test_dilated_scorer_outputs_against_oracle():
    check_against_oracle(Case(3, 4, 128, 2048 + 4, B=1, H=4, H_kv=2, d=32, dtype=torch.float64), seed=22,
                         scorer="dilated", dilation=4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_stages_against_oracle(dtype):
    """_gather and _scatter alone against the oracle's pyramid/gather and scatter."""
    case = Case(3, 4, 128, 2048 + 9, B=2, H=4, H_kv=2, d=16, dtype=dtype)
    q, k, v = inputs(case, seed=23)
    entries = oracle.select(q, k, *case.config)
    plan = stage_plan(q, k, v, entries, case.config)
    got = stage_gather(q, k, v, plan, case.config)
    want = oracle.gather(q.double(), k.double(), v.double(), entries, *case.config)
    stock = oracle.gather(q, k, v, entries, *case.config)
    for name, a, r, s in zip(("qg", "kg", "vg"), got, want, stock):
        assert_within_rule(name, a, r, s, "out")
    og = randn_like(got[0], seed=24)
    out = stage_scatter(og, plan, case.N, case.config)
    assert_within_rule("scatter", out, oracle.scatter(og.double(), entries, case.N, *case.config),
                       oracle.scatter(og, entries, case.N, *case.config), "out")
