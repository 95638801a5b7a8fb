"""TESTING.md item 3: the attention is causal across tiles, bit for bit.

Every token from the start of a tile onward is redrawn (q, k and v); every
output before that tile must be unchanged (torch.equal), and so must the
entries of the earlier tiles. Positions inside and after the tile may change
(the spec allows selection inside a tile to depend on the whole tile), and the
test checks that outputs there do change, so it cannot pass on a constant op.
"""

from __future__ import annotations

import pytest
import torch

from common import Case, attention, inputs, select

CASES = [
    # (case, backend, scorer)
    (Case(2, 2, 256, 512, B=2, H=2, H_kv=1, d=32), "auto", "norm"),
    (Case(3, 4, 512, 8192 + 77, B=1, H=4, H_kv=2, d=16), "auto", "norm"),
    (Case(4, 2, 384, 3072, B=1, H=2, H_kv=2, d=64), "auto", "norm"),
    (Case(3, 2, 512, 2048 + 3, B=1, H=2, H_kv=1, d=32, dtype=torch.bfloat16), "auto", "norm"),
    (Case(3, 2, 256, 1024 + 8, B=2, H=2, H_kv=1, d=16, dtype=torch.float64), "math", "norm"),
    (Case(3, 4, 256, 4096, B=1, H=2, H_kv=1, d=16), "auto", "dilated"),
]


@pytest.mark.parametrize("case,backend,scorer", CASES, ids=lambda x: str(x))
def test_outputs_before_a_changed_tile_are_unchanged(case, backend, scorer):
    g = case.geometry
    assert g.T >= 2
    q, k, v = inputs(case, seed=31)
    out = attention(q, k, v, case, backend=backend, scorer=scorer)
    entries = select(q, k, case, v=v, scorer=scorer)
    assert out.isfinite().all()
    for tile in range(1, g.T):
        t0 = tile * g.tile_len
        q2, k2, v2 = (x.clone() for x in (q, k, v))
        for i, x in enumerate((q2, k2, v2)):
            gen = torch.Generator().manual_seed(100 * tile + i)
            x[:, t0:] = torch.randn(x[:, t0:].shape, generator=gen, dtype=torch.float64).to(x.dtype) * 3
        out2 = attention(q2, k2, v2, case, backend=backend, scorer=scorer)
        entries2 = select(q2, k2, case, v=v2, scorer=scorer)
        assert torch.equal(out2[:, :t0], out[:, :t0]), f"tile {tile}: an output before position {t0} changed"
        assert torch.equal(entries2[..., : tile * g.E], entries[..., : tile * g.E])
        # Not vacuous: the changed tokens do change the outputs from t0 on.
        assert not torch.equal(out2[:, t0:], out[:, t0:])


def test_last_token_change_reaches_only_the_last_tile():
    """A single token changed at the very end: every earlier tile's outputs are
    unchanged, in a config with T = 4 tiles."""
    case = Case(2, 4, 512, 2048, B=1, H=2, H_kv=1, d=32)
    q, k, v = inputs(case, seed=32)
    out = attention(q, k, v, case)
    for x in (q, k, v):
        x[:, -1] = -x[:, -1] * 7
    out2 = attention(q, k, v, case)
    last = (case.geometry.T - 1) * case.geometry.tile_len
    assert torch.equal(out2[:, :last], out[:, :last])
    assert not torch.equal(out2[:, -1], out[:, -1])
