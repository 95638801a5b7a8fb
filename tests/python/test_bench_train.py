"""`lighthouse bench train` on CPU (issue 14): the smoke test of the
training-step benchmark (it runs, its JSON has every configuration and every
category of the breakdown; no timing assertion) and the fused path's checks
(csrc/bench/train_check.h: fused AdamW and the fused model within the
tolerance rule of the unfused ones, bit-identical recompute modes and
deterministic reruns)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

BIN = Path(os.environ["LIGHTHOUSE_BUILD_DIR"]) / "lighthouse"
CATEGORIES = ["matmul", "attention", "lighthouse_stages", "normalisation", "rope", "activation", "loss", "optimizer",
              "copies", "recompute", "other"]

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"needs the lighthouse program ({BIN})")


def run(*args, timeout=600):
    r = subprocess.run([str(BIN), "bench", "train", *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


def test_smoke_tiny_on_cpu(tmp_path):
    out = tmp_path / "bench-train.json"
    stdout = run("--preset", "tiny", "--device", "cpu", "--warmup", "0", "--steps", "1", "--no-check",
                 "--train.seq_len", "512", "--json", str(out))
    assert "breakdown of one step" in stdout
    doc = json.loads(out.read_text())
    assert doc["preset"] == "tiny" and doc["seq_len"] == 512 and "6*T*" in doc["method"]
    runs = doc["runs"]
    assert [(r["attention"], r["fused"]) for r in runs] == [("lighthouse", False), ("lighthouse", True),
                                                            ("dense", False), ("dense", True)]
    for r in runs:
        what = f"{r['attention']} fused={r['fused']}"
        assert list(r["breakdown_ms"]) == CATEGORIES, what
        assert r["breakdown_total_ms"] > 0 and math.isclose(sum(r["breakdown_ms"].values()), r["breakdown_total_ms"],
                                                            rel_tol=1e-9), what
        assert r["tokens_per_step"] == 512 and r["tokens_per_s"] > 0, what
        assert math.isclose(r["step_ms"], r["forward_ms"] + r["backward_ms"] + r["optimizer_ms"], rel_tol=1e-9), what
        assert r["model_flops_per_step"]["matmul"] > 0 and r["model_flops_per_step"]["attention"] > 0, what
        assert len(r["losses"]) == 2 and all(math.isfinite(x) for x in r["losses"]), what
        # The model's parts show up in their categories.
        for cat in ("matmul", "attention", "normalisation", "activation", "loss", "optimizer"):
            assert r["breakdown_ms"][cat] > 0, f"{what}: no {cat} time"
        assert (r["breakdown_ms"]["lighthouse_stages"] > 0) == (r["attention"] == "lighthouse"), what
        assert r["layers"] == ("DLLD" if r["attention"] == "lighthouse" else "DDDD"), what
    # The same seed and tokens: the first (warm-up-free) losses agree closely, fused or not.
    assert math.isclose(runs[0]["losses"][0], runs[1]["losses"][0], rel_tol=1e-4)


def test_checks_pass_on_cpu():
    stdout = run("--check-only", "--device", "cpu")
    for name in ("adamw", "model", "lighthouse", "recompute", "deterministic"):
        assert f"  {name}" in stdout
    assert "all checks passed" in stdout, stdout
