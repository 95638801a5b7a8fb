"""GPU checks of the fused training path at the trainer level (issue 14):
`lighthouse bench train --check-only` on CUDA. Skipped where CUDA or the
program is absent. The program's checks (csrc/bench/train_check.h):

- fused AdamW (fused::adamw_) vs the unfused update over several steps
  on CUDA, both against a float64 CPU run: within the tolerance rule;
- the tiny model's training losses and parameters after a few steps with the
  fused kernels vs without, both against a float64 CPU run of the same
  model: within the tolerance rule;
- keep / selective / full / segment checkpointing give bit-identical losses
  and gradients; a deterministic rerun is bit-identical.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LIGHTHOUSE_BIN", REPO / "build-gpu" / "lighthouse"))

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(not BIN.exists(), reason=f"needs the lighthouse program ({BIN})"),
]


def test_fused_training_checks_pass_on_cuda():
    r = subprocess.run([str(BIN), "bench", "train", "--check-only", "--device", "cuda"], capture_output=True,
                       text=True, timeout=600, cwd=REPO)
    print(r.stdout)
    print(r.stderr[-4000:])
    assert r.returncode == 0, f"checks failed (exit {r.returncode})"
    assert "all checks passed" in r.stdout
