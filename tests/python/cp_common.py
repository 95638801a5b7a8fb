"""Helpers of the context-parallel tests, written from shared/LIGHTHOUSE.md
section 10 and shared/PARALLEL.md with plain tensor ops (no shared code with
csrc/dist): the chunks of a sequence, a chunk's selection in the whole
sequence's pyramid indices, and the spill rows a chunk's scatter sends on.

A sequence of N tokens in 2W chunks of n = N / 2W tokens; chunk c holds
tokens [c n, (c + 1) n). Each chunk selects with top_k / 2W on its own (its
tiles are the whole sequence's tiles), so its sub-sequence is the whole
sequence's slots [c S_c, (c + 1) S_c), S_c = S / 2W.
"""

from __future__ import annotations

import torch

from oracle import Geometry


def chunk_geometry(N: int, L: int, p: int, top_k: int, W: int) -> Geometry:
    """Geometry of one of the 2W chunks (n tokens, top_k / 2W)."""
    assert top_k % (128 * 2 * W) == 0 and N % (2 * W) == 0
    return Geometry(N // (2 * W), L, p, top_k // (2 * W))


def to_global(entries: torch.Tensor, chunk: int, cg: Geometry, whole: Geometry) -> torch.Tensor:
    """Chunk `chunk`'s entries (its own pyramid indices) as the whole sequence's:
    level-l entry j of the chunk is entry chunk * N_l(chunk) + j of the whole."""
    out = torch.full_like(entries, -1)
    for l in range(cg.L):
        lo, hi = cg.offset(l), cg.offset(l + 1)
        inside = (entries >= lo) & (entries < hi)
        out = torch.where(inside, entries - lo + chunk * cg.level_size(l) + whole.offset(l), out)
    assert bool((out >= 0).all())
    return out


def spill_rows(og: torch.Tensor, entries: torch.Tensor, cg: Geometry) -> torch.Tensor:
    """[B, H, L, d]: row l >= 1 is og's row of the chunk's last level-l entry
    (index N_l - 1), zeros when that entry was not emitted; row 0 zeros.
    og [B, H, S_c, d], entries [B, H, S_c] in the chunk's pyramid indices."""
    B, H, _, d = og.shape
    rows = torch.zeros(B, H, cg.L, d, dtype=og.dtype, device=og.device)
    for l in range(1, cg.L):
        hit = entries == cg.offset(l) + cg.level_size(l) - 1  # at most one slot per (b, h)
        assert bool((hit.sum(-1) <= 1).all())
        slot = hit.to(torch.int64).argmax(-1)  # [B, H]
        row = og.gather(2, slot[:, :, None, None].expand(B, H, 1, d))[:, :, 0]
        rows[:, :, l] = torch.where(hit.any(-1)[:, :, None], row, torch.zeros_like(row))
    return rows


def spill_reach(cg: Geometry) -> int:
    """How many rows past its end a chunk's scatter reaches: c_{L-1} - 1."""
    return cg.span(cg.L - 1) - 1
