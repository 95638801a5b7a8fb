"""Launching multi-process tests: torchrun (as users do) and, for failure
tests, processes started by hand with torchrun's environment (so that no
torchrun agent stops the survivors itself)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def env() -> dict:
    """This environment plus the test helpers on PYTHONPATH, and the source
    package unless the tests run against the installed one
    (LIGHTHOUSE_TEST_INSTALLED=1); the library paths come from conftest.py's
    LIGHTHOUSE_* variables."""
    e = dict(os.environ)
    package = [] if e.get("LIGHTHOUSE_TEST_INSTALLED") == "1" else [str(REPO / "python")]
    e["PYTHONPATH"] = os.pathsep.join(package + [str(HERE)] + ([e["PYTHONPATH"]] if "PYTHONPATH" in e else []))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE"):
        e.pop(var, None)
    return e


def torchrun(nproc: int, program: list[str], timeout: float, no_python: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += (["--no-python"] if no_python else []) + program
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(world: int, program: list[str], extra_env: dict, ranks: int | None = None) -> list[subprocess.Popen]:
    """Ranks 0 .. ranks-1 (default: all) of a `world`-process job of `program`,
    with RANK, WORLD_SIZE, ... set by hand."""
    port = free_port()
    procs = []
    for rank in range(world if ranks is None else ranks):
        e = env()
        e.update(extra_env)
        e.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=str(port))
        procs.append(subprocess.Popen(program, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs
