"""Finding, checking and loading the op library (liblighthouse_ops.so).

The library is a LibTorch extension: it links to the C++ ABI of the torch it
was built against, which changes between torch releases. Beside it lies
liblighthouse_ops.json (written by CMake): the package version, the torch
version it was built for and whether it has CUDA kernels. The library is
loaded only if the installed torch is that exact version.

Where the library is: ``$LIGHTHOUSE_LIBRARY`` if set (developers: a build
tree's library, e.g. build/liblighthouse_ops.so, with ``python/`` on the
path), else next to this file (``pip install --no-build-isolation .``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

LIBRARY_NAME = "liblighthouse_ops.so"
INSTALL_HINT = "`pip install --no-build-isolation .` from the Lighthouse source tree"


def library_path() -> Path:
    """The op library this package loads."""
    env = os.environ.get("LIGHTHOUSE_LIBRARY")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent / LIBRARY_NAME


def build_info(path: Path | None = None) -> dict:
    """The build facts beside the library: version, torch, cuda_kernels, cuda."""
    path = library_path() if path is None else path
    info_path = path.with_suffix(".json")
    if not path.is_file():
        where = "$LIGHTHOUSE_LIBRARY" if os.environ.get("LIGHTHOUSE_LIBRARY") else "this package"
        raise ImportError(
            f"lighthouse: no op library at {path} ({where}). Install the package with {INSTALL_HINT}, "
            "or point LIGHTHOUSE_LIBRARY at a built liblighthouse_ops.so."
        )
    if not info_path.is_file():
        raise ImportError(
            f"lighthouse: {info_path} is missing beside the op library {path}; it is written by the CMake "
            f"build: rebuild (cmake --build, or {INSTALL_HINT})."
        )
    with open(info_path, encoding="utf-8") as f:
        return json.load(f)


def check_torch(info: dict, path: Path) -> None:
    """Raises ImportError unless the installed torch is the one the library was built for."""
    if info["torch"] != torch.__version__:
        raise ImportError(
            f"lighthouse {info['version']}: the op library {path} was built for torch {info['torch']}, but torch "
            f"{torch.__version__} is installed. The library links to torch's C++ ABI, which changes between "
            f"releases: rebuild it against the installed torch ({INSTALL_HINT}, or rebuild the build tree that "
            "LIGHTHOUSE_LIBRARY points at), or install torch " + info["torch"] + "."
        )


def load() -> dict:
    """Checks and loads the op library (registers torch.ops.lighthouse.*); returns its build facts."""
    path = library_path()
    info = build_info(path)
    check_torch(info, path)
    torch.ops.load_library(str(path))
    return info
