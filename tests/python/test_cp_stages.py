"""The local half of context-parallel Lighthouse, in one process: chunks of
whole tiles select exactly the whole sequence's entries, and a chunk's
scatter with its spill rows (forward) or its next chunk's first gradient rows
(backward) reproduces the whole sequence's scatter bit for bit
(torch.ops.lighthouse._cp_scatter*, the kernels' CP extension; with no spill
they are the one-device stage, itself checked against the oracle here).

The spill matters at every chunk boundary: with zeros in its place the first
c_{L-1} - 1 rows of every chunk after the first change, and no other row.
"""

from __future__ import annotations

import pytest
import torch

import lighthouse.cp  # noqa: F401  (registers torch.ops.lighthouse._cp_scatter*)
import oracle
from common import Case, inputs, randn_like, select
from cp_common import chunk_geometry, spill_reach, spill_rows, to_global

# (case, W): whole-sequence configs whose 2W chunks hold whole tiles.
CASES = [
    (Case(L=3, p=4, top_k=512, N=8192, B=1, H=2, H_kv=1, d=16), 2),
    (Case(L=3, p=2, top_k=1024, N=4096, B=2, H=2, H_kv=2, d=8), 4),
    (Case(L=4, p=2, top_k=512, N=4096, B=1, H=3, H_kv=1, d=8), 2),
    (Case(L=2, p=8, top_k=256, N=2048, B=1, H=1, H_kv=1, d=8, dtype=torch.bfloat16), 1),
]


def ids(case_w):
    return f"{case_w[0]}-W{case_w[1]}"


def chunks(case: Case, W: int, seed: int):
    """Whole-sequence inputs and entries; per chunk its inputs' entries."""
    q, k, _ = inputs(case, seed)
    entries = select(q, k, case)
    cg = chunk_geometry(case.N, case.L, case.p, case.top_k, W)
    n = cg.N
    local = [torch.ops.lighthouse.select(q[:, c * n:(c + 1) * n], k[:, c * n:(c + 1) * n], cg.L, cg.p, cg.top_k)
             for c in range(2 * W)]
    return entries, cg, local


@pytest.mark.parametrize("case_w", CASES, ids=ids)
def test_chunks_select_the_whole_sequences_entries(case_w):
    case, W = case_w
    entries, cg, local = chunks(case, W, 1)
    S_c = cg.S
    assert entries.shape[-1] == 2 * W * S_c
    for c, e in enumerate(local):
        assert torch.equal(to_global(e, c, cg, case.geometry), entries[:, :, c * S_c:(c + 1) * S_c]), f"chunk {c}"


@pytest.mark.parametrize("case_w", CASES, ids=ids)
def test_chunk_scatter_with_spill_is_the_whole_scatter(case_w):
    case, W = case_w
    entries, cg, local = chunks(case, W, 2)
    n, S_c, R = cg.N, cg.S, spill_reach(cg)
    cfg = (cg.L, cg.p, cg.top_k)
    og = randn_like(torch.empty(case.B, case.H, entries.shape[-1], case.d, dtype=case.dtype), 3)
    whole = torch.ops.lighthouse._cp_scatter(og, entries, case.N, *case.config, None)  # the one-device stage
    if case.dtype == torch.float32:  # which is the spec's scatter
        ref = oracle.scatter(og.double(), entries, case.N, *case.config)
        assert (whole.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    for c in range(2 * W):
        og_c = og[:, :, c * S_c:(c + 1) * S_c]
        prev = (spill_rows(og[:, :, (c - 1) * S_c:c * S_c], local[c - 1], cg) if c > 0
                else torch.zeros(case.B, case.H, cg.L, case.d, dtype=og.dtype))
        out = torch.ops.lighthouse._cp_scatter(og_c, local[c], n, *cfg, prev)
        assert torch.equal(out, whole[:, c * n:(c + 1) * n]), f"chunk {c}"
        if c == 0:
            continue
        # Without the spill (the reference code's behaviour) exactly the first
        # R rows change, all of them: the spill is real at every boundary.
        dropped = torch.ops.lighthouse._cp_scatter(og_c, local[c], n, *cfg, torch.zeros_like(prev))
        assert torch.equal(dropped[:, R:], out[:, R:])
        assert bool((dropped[:, :R] != out[:, :R]).any(-1).all()), f"boundary {c}: spill rows without effect"


@pytest.mark.parametrize("case_w", CASES, ids=ids)
def test_chunk_scatter_backward_with_next_rows_is_the_whole_adjoint(case_w):
    case, W = case_w
    entries, cg, local = chunks(case, W, 4)
    n, S_c, R = cg.N, cg.S, spill_reach(cg)
    cfg = (cg.L, cg.p, cg.top_k)
    dout = randn_like(torch.empty(case.B, case.N, case.H, case.d, dtype=case.dtype), 5)
    dog = torch.ops.lighthouse._cp_scatter_backward(dout, entries, case.N, *case.config, None)  # the one-device stage
    for c in range(2 * W):
        nxt = (dout[:, (c + 1) * n:(c + 1) * n + R] if c + 1 < 2 * W
               else torch.zeros(case.B, R, case.H, case.d, dtype=dout.dtype))
        got = torch.ops.lighthouse._cp_scatter_backward(dout[:, c * n:(c + 1) * n], local[c], n, *cfg, nxt)
        assert torch.equal(got, dog[:, :, c * S_c:(c + 1) * S_c]), f"chunk {c}"
