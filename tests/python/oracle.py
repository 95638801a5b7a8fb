"""Independent oracle for Lighthouse attention, written from shared/LIGHTHOUSE.md.

Slow and plain on purpose: every step is the spec's sentence in torch ops, and
nothing is shared with csrc/ (no kernels, no op calls). The tests compare the
op against it: emitted entries exactly, outputs and gradients within the
tolerance rule of tolerances.py.

    select(q, k, L, p, top_k)                       -> int64 [B, H, S]
    attention(q, k, v, L, p, top_k, dtype=float64)  -> [B, N, H, d]

Conventions (the spec's names): q [B, N, H, d], k and v [B, N, H_kv, d];
level l spans c_l = p^l base tokens; pyramid index pyr(l, j) = offset[l] + j
with level sizes taken from the padded length N_pad.

The steps that define the selection are written to be correct by inspection
rather than fast:
  - ranking: a candidate's rank is the number of candidates that beat it
    (larger score, or an equal score and a smaller index), counted over all
    pairs; no sort and no top-k whose tie order would need trusting;
  - causal order: exact integer keys (the spec's key times 2^L), sorted over
    the whole row (no reliance on the per-tile concatenation property, which
    test_structure.py checks separately).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SELECT_PER_LEVEL = 128  # entries a tile selects at each level (64 by q score, 64 by k score)
SELECT_HALF = 64


@dataclass(frozen=True)
class Geometry:
    N: int  # real length
    L: int
    p: int
    top_k: int

    @property
    def T(self) -> int:  # tiles per row
        return self.top_k // SELECT_PER_LEVEL

    @property
    def N_pad(self) -> int:  # N rounded up to a multiple of p^(L-1) * T
        unit = self.p ** (self.L - 1) * self.T
        return -(-self.N // unit) * unit

    def span(self, l: int) -> int:  # c_l
        return self.p**l

    def level_size(self, l: int) -> int:  # N_l (padded)
        return self.N_pad // self.span(l)

    def offset(self, l: int) -> int:  # pyr(l, 0)
        return sum(self.level_size(m) for m in range(l))

    @property
    def P(self) -> int:
        return self.offset(self.L)

    @property
    def tile_len(self) -> int:
        return self.N_pad // self.T

    @property
    def C(self) -> int:  # coarsest entries per tile
        return self.level_size(self.L - 1) // self.T

    @property
    def E(self) -> int:  # entries emitted per tile
        return self.C + (self.L - 1) * self.p * SELECT_PER_LEVEL

    @property
    def S(self) -> int:
        return self.N_pad // self.p ** (self.L - 1) + (self.L - 1) * self.p * self.top_k

    def min_n(self) -> int:
        return self.top_k * self.p ** (self.L - 1)

    def level_of(self, pyr: torch.Tensor) -> torch.Tensor:
        lev = torch.zeros_like(pyr)
        for l in range(1, self.L):
            lev += (pyr >= self.offset(l)).long()
        return lev

    def split(self, pyr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pyramid index -> (level, index within the level)."""
        lev = self.level_of(pyr)
        offsets = torch.tensor([self.offset(l) for l in range(self.L)], dtype=torch.long)
        return lev, pyr - offsets[lev]


# ----------------------------------------------------------------------------
# Dense causal attention, written out (never the op, never torch's SDPA).


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q, k, v [..., S, d] -> softmax(q k^T / sqrt(d) + causal mask) v, in their dtype."""
    S, d = q.shape[-2], q.shape[-1]
    logits = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    future = torch.ones(S, S, dtype=torch.bool).triu(1)
    logits = logits.masked_fill(future, float("-inf"))
    return torch.matmul(torch.softmax(logits, dim=-1), v)


# ----------------------------------------------------------------------------
# Section 2 and 9: scores.


def token_norms(x: torch.Tensor, g: Geometry) -> torch.Tensor:
    """x [B, >=N, heads, d] -> fp32 l2 norms [B, heads, N_pad]; positions >= N score 0.

    The sum of squares runs in float64 and is rounded once to float32 (the
    project's fp32 score, LIGHTHOUSE.md "deliberately differs"); NaN ranks as +inf.
    """
    n = (x[:, : g.N].double() ** 2).sum(-1).sqrt().float()  # [B, N, heads]
    n = torch.where(torch.isnan(n), torch.full_like(n, float("inf")), n)
    out = torch.zeros(x.shape[0], g.N_pad, x.shape[2], dtype=torch.float32)
    out[:, : g.N] = n
    return out.transpose(1, 2).contiguous()


def level_scores(base: torch.Tensor, g: Geometry) -> list[torch.Tensor]:
    """base [B, heads, N_pad] -> per level l, [B, heads, N_l]: max of the span's base scores."""
    B, heads, _ = base.shape
    return [base.reshape(B, heads, g.level_size(l), g.span(l)).amax(-1) for l in range(g.L)]


def pad_tokens(x: torch.Tensor, N_pad: int) -> torch.Tensor:
    """[B, N, heads, d] -> [B, N_pad, heads, d] with zero tokens appended."""
    B, N, heads, d = x.shape
    out = x.new_zeros(B, N_pad, heads, d)
    out[:, :N] = x
    return out


def dilated_sources(q, k, v, g: Geometry, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 9, in float64: the two SDPA outputs whose token norms are sq and sk.

    Pad to N_pad, repeat k and v to H heads (GQA), view [B, N_pad, H, d] as
    [B, N_pad/r, r*H, d] (r consecutive tokens' heads stacked), causal SDPA as
    (q, k, v) and as (k, q, v), back to [B, N_pad, H, d].
    """
    B, N, H, d = q.shape
    group = H // k.shape[2]

    def stack(x):
        x = pad_tokens(x.double(), g.N_pad)
        return x.reshape(B, g.N_pad // r, r * H, d).transpose(1, 2)

    def unstack(o):
        return o.transpose(1, 2).reshape(B, g.N_pad, H, d)

    qs = stack(q)
    ks = stack(k.repeat_interleave(group, dim=2))
    vs = stack(v.repeat_interleave(group, dim=2))
    return unstack(causal_sdpa(qs, ks, vs)), unstack(causal_sdpa(ks, qs, vs))


# ----------------------------------------------------------------------------
# Section 3 and 4: the cascade and the causal order.


def beaten_by(scores: torch.Tensor, idx: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """For each candidate i, how many eligible candidates j rank above it:
    s_j > s_i, or s_j == s_i and idx_j < idx_i. Shapes [..., n]."""
    si, sj = scores.unsqueeze(-1), scores.unsqueeze(-2)
    ii, ij = idx.unsqueeze(-1), idx.unsqueeze(-2)
    beats = (sj > si) | ((sj == si) & (ij < ii))
    return (beats & eligible.unsqueeze(-2)).sum(-1)


@dataclass
class Selection:
    entries: torch.Tensor  # int64 [B, H, S] pyramid indices in causal order
    keys: torch.Tensor  # int64 [B, H, S] the spec's causal key times 2^L
    selected: torch.Tensor  # bool [B, H, S] selected at its level (>= 1), else kept coarse / level 0


def select_detailed(q, k, L, p, top_k, *, scorer="norm", dilation=4, v=None) -> Selection:
    B, N, H, _ = q.shape
    g = Geometry(N, L, p, top_k)
    if scorer == "norm":
        q_src, k_src = q, k
    elif scorer == "dilated":
        q_src, k_src = dilated_sources(q, k, v, g, dilation)
    else:
        raise ValueError(scorer)
    sq = level_scores(token_norms(q_src, g), g)  # per level [B, H, N_l]
    sk = level_scores(token_norms(k_src, g), g)  # per level [B, H_s, N_l]
    group = H // k_src.shape[2]
    sk = [s.repeat_interleave(group, dim=1) for s in sk]  # query head h uses sk head h // group

    T, C = g.T, g.C
    scale = 2**L  # exact integer keys: key * 2^L
    # Candidates per (row, head, tile): the tile's C coarsest entries.
    cand = torch.arange(T * C).reshape(1, 1, T, C).expand(B, H, T, C)
    keys, pyrs, sels = [], [], []
    for l in range(L - 1, 0, -1):
        c = g.span(l)
        n = cand.shape[-1]
        s_q = sq[l].gather(2, cand.reshape(B, H, T * n)).reshape(B, H, T, n)
        s_k = sk[l].gather(2, cand.reshape(B, H, T * n)).reshape(B, H, T, n)
        everyone = torch.ones_like(cand, dtype=torch.bool)
        in_aq = beaten_by(s_q, cand, everyone) < SELECT_HALF
        in_ak = ~in_aq & (beaten_by(s_k, cand, ~in_aq) < SELECT_PER_LEVEL - SELECT_HALF)
        sel = in_aq | in_ak
        assert int(sel.sum(-1).min()) == SELECT_PER_LEVEL == int(sel.sum(-1).max())
        # Every candidate is emitted; selected ones sort after their own span.
        keys.append(torch.where(sel, (cand + 1) * c * scale - 2 ** (L - l), cand * c * scale))
        pyrs.append(g.offset(l) + cand)
        sels.append(sel)
        # Children of the selected, p each; the next level's candidates.
        chosen = cand[sel].reshape(B, H, T, SELECT_PER_LEVEL)
        cand = (chosen.unsqueeze(-1) * p + torch.arange(p)).reshape(B, H, T, SELECT_PER_LEVEL * p)
    keys.append(cand * scale)  # level 0: all children of the level-1 selection
    pyrs.append(cand)
    sels.append(torch.zeros_like(cand, dtype=torch.bool))

    key = torch.cat(keys, -1).reshape(B, H, -1)
    pyr = torch.cat(pyrs, -1).reshape(B, H, -1)
    sel = torch.cat(sels, -1).reshape(B, H, -1)
    assert key.shape[-1] == g.S
    order = key.argsort(dim=-1)
    key = key.gather(-1, order)
    assert bool((key[..., 1:] > key[..., :-1]).all()), "keys must be unique"
    return Selection(pyr.gather(-1, order), key, sel.gather(-1, order))


def select(q, k, L, p, top_k, *, scorer="norm", dilation=4, v=None) -> torch.Tensor:
    """The emitted entries [B, H, S] (int64 pyramid indices) in causal order."""
    return select_detailed(q, k, L, p, top_k, scorer=scorer, dilation=dilation, v=v).entries


# ----------------------------------------------------------------------------
# Section 1, 5, 6: pyramid, gather, dense attention, scatter. Differentiable.


def pyramid(x: torch.Tensor, g: Geometry) -> torch.Tensor:
    """[B, N, heads, d] -> [B, P, heads, d]: level l entry j = mean of x over
    [j c_l, (j+1) c_l), zero padding tokens included in the mean."""
    B, _, heads, d = x.shape
    xp = pad_tokens(x, g.N_pad)
    levels = [xp.reshape(B, g.level_size(l), g.span(l), heads, d).mean(2) for l in range(g.L)]
    return torch.cat(levels, dim=1)


def gather(q, k, v, entries, L, p, top_k):
    """Pyramid rows of the emitted entries: three [B, H, S, d]; query head h
    reads k and v head h // (H / H_kv)."""
    B, N, H, d = q.shape
    g = Geometry(N, L, p, top_k)
    group = H // k.shape[2]
    idx = entries.unsqueeze(-1).expand(B, H, entries.shape[-1], d)

    def take(x):
        pyr = pyramid(x, g).repeat_interleave(H // x.shape[2], dim=2)  # [B, P, H, d]
        return pyr.transpose(1, 2).gather(2, idx)

    assert group * k.shape[2] == H
    return take(q), take(k), take(v)


def scatter(og, entries, N, L, p, top_k):
    """og [B, H, S, d] -> [B, N, H, d]: the output of a level-l entry j is added
    to positions [j c_l + c_l - 1, j c_l + 2 c_l - 2] that are < N."""
    B, H, S, d = og.shape
    g = Geometry(N, L, p, top_k)
    room = g.N_pad + 2 * g.span(L - 1)  # every shifted span fits; cut to N below
    out = og.new_zeros(B * H * room, d)
    lev, j = g.split(entries)
    b_of = torch.arange(B).reshape(B, 1, 1).expand(B, H, S)
    h_of = torch.arange(H).reshape(1, H, 1).expand(B, H, S)
    for l in range(L):
        c = g.span(l)
        m = lev == l
        starts = j[m] * c + c - 1  # [n]
        targets = starts.unsqueeze(-1) + torch.arange(c)  # [n, c]
        rows = (b_of[m] * H + h_of[m]).unsqueeze(-1) * room + targets
        src = og[m].unsqueeze(1).expand(-1, c, d).reshape(-1, d)
        out = out.index_add(0, rows.reshape(-1), src)
    return out.reshape(B, H, room, d)[:, :, :N].transpose(1, 2)


def attention(q, k, v, L, p, top_k, *, entries=None, scorer="norm", dilation=4, dtype=torch.float64,
              sdpa=causal_sdpa):
    """Lighthouse attention computed in `dtype` (float64: the reference; the
    test dtype: the "stock ops" path of the tolerance rule). The selection is
    taken from `entries` if given, else from the inputs as they are. `sdpa`
    runs step 5 ([B, H, S, d] x3 -> [B, H, S, d]); the default is the
    written-out causal_sdpa above."""
    if entries is None:
        entries = select(q.detach(), k.detach(), L, p, top_k, scorer=scorer, dilation=dilation, v=v.detach())
    qg, kg, vg = gather(q.to(dtype), k.to(dtype), v.to(dtype), entries, L, p, top_k)
    og = sdpa(qg, kg, vg)
    return scatter(og, entries, q.shape[1], L, p, top_k)
