"""Context-parallel Lighthouse and dense attention on CPU with Gloo, under
torchrun with 2 and 4 processes (cp_worker.py does the checks on every rank:
identical entries, outputs and gradients within the tolerance rule, spill
rows at every chunk boundary; with 4 ranks also CP=2 on two sub-groups)."""

from __future__ import annotations

import re

import pytest

from cp_launch import HERE, torchrun


@pytest.mark.parametrize("world", [2, 4])
def test_cp_matches_one_process(world):
    r = torchrun(world, [str(HERE / "cp_worker.py")], timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # The ranks share one pipe: their lines may interleave mid-line.
    ok = re.findall(r"cp_worker: ok rank \d+ of \d+: \d+ checks", out)
    assert len(ok) == world, out
    print("\n".join(ok))
