"""Shared set-up of the Python tests: make the test helpers (this directory)
importable, import `lighthouse` (registers torch.ops.lighthouse.*), seed torch.

`lighthouse` is whatever Python finds: scripts/test.sh runs these tests with
the package installed into a fresh virtual environment (pip install
--no-build-isolation .), without python/ on the path
(LIGHTHOUSE_TEST_INSTALLED=1). Developers can run them against a build tree
instead: with PYTHONPATH=python, the source package (which has no library
of its own) loads $LIGHTHOUSE_BUILD_DIR/liblighthouse_ops.so unless
LIGHTHOUSE_LIBRARY says otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# The build directory (env LIGHTHOUSE_BUILD_DIR, default build/, relative to
# the repository root) holds the C++ programs some tests run.
BUILD_DIR = Path(os.environ.get("LIGHTHOUSE_BUILD_DIR", "build"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
os.environ["LIGHTHOUSE_BUILD_DIR"] = str(BUILD_DIR)

if os.environ.get("LIGHTHOUSE_TEST_INSTALLED") != "1" and "LIGHTHOUSE_LIBRARY" not in os.environ:
    spec = importlib.util.find_spec("lighthouse")
    if spec is not None and spec.origin and not (Path(spec.origin).parent / "liblighthouse_ops.so").exists():
        os.environ["LIGHTHOUSE_LIBRARY"] = str(BUILD_DIR / "liblighthouse_ops.so")

import lighthouse  # noqa: E402  (registers torch.ops.lighthouse.*)

# lighthouse.cp loads liblighthouse_dist.so beside the op library; the pip
# package builds the op library only, so the tests (and the torchrun workers
# they start, which inherit this environment) take the build tree's.
if "LIGHTHOUSE_DIST_LIBRARY" not in os.environ and not lighthouse.library_path().with_name("liblighthouse_dist.so").exists():
    os.environ["LIGHTHOUSE_DIST_LIBRARY"] = str(BUILD_DIR / "liblighthouse_dist.so")


def pytest_report_header(config):
    return f"lighthouse {lighthouse.__version__} from {Path(lighthouse.__file__).parent}, op library {lighthouse.library_path()}"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same seed and the machine's thread count."""
    threads = torch.get_num_threads()
    torch.manual_seed(20260607)
    yield
    torch.set_num_threads(threads)
