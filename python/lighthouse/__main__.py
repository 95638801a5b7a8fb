"""`python -m lighthouse`: what is installed, what it was built for, and
whether the CUDA kernels are in. Importing the package already refuses a
library built for another torch (with a message saying so)."""

from __future__ import annotations

import sys

import torch

import lighthouse


def main() -> int:
    info = lighthouse.build_info()
    if info["cuda_kernels"]:
        cuda = f"yes (built with CUDA {info['cuda']})"
    else:
        cuda = "no (built without nvcc, or against a torch without CUDA): CPU only"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    lines = [
        f"lighthouse {lighthouse.__version__}",
        f"  package:       {lighthouse.__file__.rsplit('/', 1)[0]}",
        f"  op library:    {lighthouse.library_path()}",
        f"  built for:     torch {info['torch']} (installed: torch {torch.__version__})",
        f"  CUDA kernels:  {cuda}",
        f"  CUDA device:   {device}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
