"""A rank that dies, stalls or never starts makes the others fail with a clear message
within the groups' timeout (5 s here), never hang: the C++ process groups
(csrc/dist, test_dist's Dist.DeadOrStalledPeerFailsWithMessage) and the
Python path (torch.distributed groups under lighthouse.cp). Two processes
started by hand with torchrun's environment: a torchrun agent would stop the
survivor itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cp_launch import HERE, spawn_ranks

TEST_DIST = Path(os.environ["LIGHTHOUSE_BUILD_DIR"]) / "tests" / "cpp" / "test_dist"


def run_pair(program: list[str], extra_env: dict, ranks: int = 2) -> str:
    procs = spawn_ranks(2, program, extra_env, ranks)
    start = time.monotonic()
    try:
        out0, _ = procs[0].communicate(timeout=120)
        elapsed = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        out1 = procs[1].communicate()[0] if ranks > 1 else "(not started)"
    assert procs[0].returncode == 0, f"rank 0:\n{out0}\nrank 1:\n{out1}"
    assert elapsed < 90, f"rank 0 took {elapsed:.0f} s:\n{out0}"
    return out0


@pytest.mark.parametrize("mode", ["exit", "stall", "absent"])
def test_cpp_peer_failure(mode):
    if not TEST_DIST.is_file():
        pytest.fail(f"{TEST_DIST} not built")
    out = run_pair([str(TEST_DIST), "--gtest_filter=Dist.DeadOrStalledPeerFailsWithMessage"],
                   {"LIGHTHOUSE_TEST_PEER_FAILURE": mode}, ranks=1 if mode == "absent" else 2)
    assert "[  PASSED  ] 1 test" in out and "SKIPPED" not in out, out
    assert ("could not host the store" if mode == "absent" else "failed on rank 0 of 2") in out, out


def test_python_peer_failure():
    out = run_pair([sys.executable, str(HERE / "cp_worker.py"), "--peer-failure", "exit"], {})
    assert "cp_worker: peer failure (exit) caught" in out, out
