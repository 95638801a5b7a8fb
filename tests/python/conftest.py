"""Shared set-up of the op tests: make `lighthouse` (python/) and the test
helpers (this directory) importable, load the op library, seed torch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (REPO / "python", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# The build directory (env LIGHTHOUSE_BUILD_DIR, default build/, relative to
# the repository root) holds the op library and the C++ reference program.
BUILD_DIR = Path(os.environ.get("LIGHTHOUSE_BUILD_DIR", "build"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
os.environ["LIGHTHOUSE_BUILD_DIR"] = str(BUILD_DIR)
os.environ.setdefault("LIGHTHOUSE_LIBRARY", str(BUILD_DIR / "liblighthouse_ops.so"))

import lighthouse  # noqa: E402,F401  (registers torch.ops.lighthouse.*)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same seed and the machine's thread count."""
    threads = torch.get_num_threads()
    torch.manual_seed(20260607)
    yield
    torch.set_num_threads(threads)
