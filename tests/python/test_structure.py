"""TESTING.md item 2: the structure of the op's selection, derived from its
emitted entries alone (no oracle selection): S against values worked out by
hand, per-tile budget, strictly increasing causal keys, coverage, fan-in <= L.

An emitted entry at level l >= 1 counts as "selected" iff its p children are
emitted too (that is what selection means: refine it one level down).
"""

from __future__ import annotations

import pytest
import torch

import lighthouse
from common import Case, inputs, min_n, select
from oracle import Geometry

# Each case with its sub-sequence length worked out by hand from the spec
# (N padded to a multiple of p^(L-1) * T, T = top_k / 128; S = N_pad / p^(L-1)
# coarsest entries + (L-1) * p * top_k), not from the oracle's Geometry.
CASES = [
    (Case(2, 2, 128, 256, B=2, H=2, H_kv=1, d=16), 384),  # N_pad 256: 128 + 256
    (Case(2, 8, 256, 2048 + 9, B=1, H=2, H_kv=2, d=16), 2306),  # N_pad 2064: 258 + 2048
    (Case(3, 2, 512, 2048, B=1, H=4, H_kv=1, d=16), 2560),  # N_pad 2048: 512 + 2048
    (Case(3, 4, 256, 4096 * 2 + 40, B=2, H=2, H_kv=1, d=16), 2564),  # N_pad 8256: 516 + 2048
    (Case(4, 2, 256, 2048 + 1, B=1, H=2, H_kv=2, d=16), 1794),  # N_pad 2064: 258 + 1536
    (Case(4, 4, 128, 8192 * 3, B=1, H=1, H_kv=1, d=16), 1920),  # N_pad 24576: 384 + 1536
    (Case(3, 8, 128, 8192 + 500, B=1, H=2, H_kv=1, d=16), 2184),  # N_pad 8704: 136 + 2048
]


def analyse(entries: torch.Tensor, g: Geometry):
    """For one row's entries [S]: level, index in level, selected flag, key * 2^L."""
    lev, j = g.split(entries)
    emitted = [set() for _ in range(g.L)]
    for l, jj in zip(lev.tolist(), j.tolist()):
        emitted[l].add(jj)
    selected = torch.tensor(
        [l >= 1 and all(jj * g.p + c in emitted[l - 1] for c in range(g.p)) for l, jj in zip(lev.tolist(), j.tolist())]
    )
    span = torch.tensor([g.span(l) for l in range(g.L)])[lev]
    scale = 2**g.L
    half = torch.tensor([2 ** (g.L - l) for l in range(g.L)])[lev]  # 2^-l * 2^L
    key = torch.where(selected, (j + 1) * span * scale - half, j * span * scale)
    return lev, j, selected, key, span


@pytest.mark.parametrize("case,S", CASES, ids=[str(c) for c, _ in CASES])
def test_structure(case, S):
    g = case.geometry
    q, k, _ = inputs(case, seed=case.N)
    entries = select(q, k, case)

    # The op emits the hand-computed S, and the Python helper agrees.
    assert entries.shape == (case.B, case.H, S)
    assert lighthouse.subsequence_length(case.N, *case.config) == S

    for b in range(case.B):
        for h in range(case.H):
            row = entries[b, h]
            assert row.unique().numel() == S, "an entry is emitted twice"
            assert int(row.min()) >= 0 and int(row.max()) < g.P
            lev, j, selected, key, span = analyse(row, g)

            # Keys strictly increase: the row is in causal order.
            assert bool((key[1:] > key[:-1]).all()), f"keys not increasing in row ({b}, {h})"

            # Each tile owns exactly E consecutive slots whose spans lie in the tile,
            # with C coarsest entries, 128 selected per level >= 1, 128 * p at level 0.
            start = j * span
            for t in range(g.T):
                sl = slice(t * g.E, (t + 1) * g.E)
                lo, hi = t * g.tile_len, (t + 1) * g.tile_len
                assert bool(((start[sl] >= lo) & (start[sl] + span[sl] <= hi)).all()), f"tile {t} leaks"
                assert int((lev[sl] == g.L - 1).sum()) == g.C
                for l in range(1, g.L):
                    assert int((selected[sl] & (lev[sl] == l)).sum()) == 128
                    if l < g.L - 1:
                        assert int((lev[sl] == l).sum()) == 128 * g.p
                assert int((lev[sl] == 0).sum()) == 128 * g.p
            # The tiles' slots are all of the row's.
            assert g.T * g.E == S

            # Every base position is covered by an emitted coarsest entry ...
            coarsest = j[lev == g.L - 1]
            assert torch.equal(coarsest.sort().values, torch.arange(g.level_size(g.L - 1)))
            # ... and the unrefined entries (kept coarse, level 0) tile [0, N_pad) exactly once.
            cover = torch.zeros(g.N_pad, dtype=torch.long)
            for s in (~selected).nonzero().flatten().tolist():
                cover[start[s] : start[s] + span[s]] += 1
            assert bool((cover == 1).all())

            # Fan-in: position t receives the shifted output of at most one entry per
            # level, [j c + c - 1, j c + 2c - 2], so at most L entries.
            fan = torch.zeros(g.L, g.N_pad + 2 * g.span(g.L - 1), dtype=torch.long)
            for s in range(S):
                l, c = int(lev[s]), int(span[s])
                t0 = int(start[s]) + c - 1
                fan[l, t0 : t0 + c] += 1
            fan = fan[:, : case.N]
            assert int(fan.max()) <= 1
            assert int(fan.sum(0).max()) <= case.L


# (L, p, top_k), the smallest valid N, the padding unit p^(L-1) * T, and S
# there and at 3 * n0 + 5, worked out by hand.
LENGTHS = [
    (2, 2, 128, 256, 2, 384, 643),  # 773 pads to 774: 387 + 256
    (3, 4, 256, 4096, 32, 2304, 2818),  # 12293 pads to 12320: 770 + 2048
    (4, 8, 128, 65536, 512, 3200, 3457),  # 196613 pads to 197120: 385 + 3072
    (2, 8, 512, 4096, 32, 4608, 5636),  # 12293 pads to 12320: 1540 + 4096
]


@pytest.mark.parametrize("L,p,top_k,n0,unit,s0,s_far", LENGTHS)
def test_subsequence_length_over_lengths(L, p, top_k, n0, unit, s0, s_far):
    """S changes only at padding-unit boundaries, by T = top_k / 128 (one
    coarsest entry per tile) per unit; the op emits exactly that many."""
    T = top_k // 128
    want = {n0: s0, n0 + 1: s0 + T, n0 + unit - 1: s0 + T, n0 + unit: s0 + T, n0 + unit + 1: s0 + 2 * T,
            3 * n0 + 5: s_far}
    assert min_n(L, p, top_k) == n0
    for N, S in want.items():
        assert lighthouse.subsequence_length(N, L, p, top_k) == S, N
        # The op itself, on meta tensors (shape only).
        q = torch.empty(1, N, 2, 8, device="meta")
        k = torch.empty(1, N, 1, 8, device="meta")
        assert torch.ops.lighthouse.select(q, k, L, p, top_k).shape[-1] == S, N
