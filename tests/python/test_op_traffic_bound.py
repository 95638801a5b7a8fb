"""benchmarks/op_traffic_bound.py: the O(N) traffic bound it prints for a
`lighthouse bench op` JSON, checked against the arithmetic done by hand."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bound_is_floor_plus_the_traffic_at_copy_speed(tmp_path):
    # B=1 N=1000 H=4 H_kv=2 d=8: token tensors 4 * 1000 * (4 + 2) * 8 * 2 =
    # 384,000 bytes; S=100: sub tensors 8 * 4 * 100 * 8 * 2 = 51,200 bytes.
    # At 1 GB/s that is 0.4352 ms; floor 2 ms -> bound 1.2176x.
    doc = {"B": 1, "H": 4, "H_kv": 2, "d": 8,
           "rows": [{"N": 1000, "S": 100, "sdpa_on_S_fwd_bwd_ms": 2.0, "lighthouse_fwd_bwd_ms": 2.5,
                     "lighthouse_over_floor_fwd_bwd": 1.25}],
           "extra_grids": [{"B": 2, "H": 2, "H_kv": 2, "d": 4,
                            "rows": [{"N": 500, "S": 50, "sdpa_on_S_fwd_bwd_ms": 1.0,
                                      "lighthouse_fwd_bwd_ms": 1.1, "lighthouse_over_floor_fwd_bwd": 1.1}]}]}
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "op_traffic_bound.py"), str(path), "--gbps", "1"],
                         check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("B=")]
    assert len(rows) == 2
    first = rows[0]
    assert first[:5] == ["B=1", "H=4/2", "d=8", "1000", "100"]
    assert float(first[7]) == 0.435  # min ms, printed to 3 places
    assert first[-2:] == ["1.218x", "1.250x"]
    # The extra grid: 4 * 2 * 500 * 4 * 4 * 2 = 128,000 + 8 * 2 * 2 * 50 * 4 * 2 = 12,800 bytes -> 0.1408 ms.
    assert rows[1][:3] == ["B=2", "H=2/2", "d=4"] and float(rows[1][7]) == 0.141
    assert rows[1][-2] == "1.141x"


def run_stages(tmp_path, doc):
    path = tmp_path / "stages.json"
    path.write_text(json.dumps(doc))
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "op_traffic_bound.py"), str(path),
                           "--stages", "--gbps", "4096"], capture_output=True, text=True)


def test_stages_bandwidth_and_excess_by_hand(tmp_path):
    # B=1 N=10^6 H=4 H_kv=2 d=64 bf16, S=10^5: q-sized 512e6 bytes, k-sized
    # 256e6, one [B, H, S, d] tensor 51.2e6. Least traffic and times chosen so
    # that each excess over 4096 GB/s is round:
    #   scores      q + 2k      1024e6 B in 0.5 ms    -> 2.05 TB/s, min 0.25   -> +0.250
    #   gather      6 sub        307.2e6 in 0.3       -> 1.02,      min 0.075  -> +0.225
    #   scatter     sub + q      563.2e6 in 0.2375    -> 2.37,      min 0.1375 -> +0.100
    #   scatter_bwd q + sub      563.2e6 in 0.1875    -> 3.00,      min 0.1375 -> +0.050
    #   gather_bwd  3 sub+q+2k  1177.6e6 in 0.4875    -> 2.42,      min 0.2875 -> +0.200
    stages = {"scores_ms": 0.5, "select_ms": 0.01, "gather_ms": 0.3, "sdpa_fwd_ms": 9.0, "scatter_ms": 0.2375,
              "scatter_bwd_ms": 0.1875, "sdpa_bwd_ms": 20.0, "gather_bwd_ms": 0.4875}
    row = {"N": 10**6, "S": 10**5, "sdpa_on_S_fwd_bwd_ms": 30.0, "lighthouse_fwd_bwd_ms": 31.5,
           "lighthouse_over_floor_fwd_bwd": 1.05, "stages": stages}
    doc = {"B": 1, "H": 4, "H_kv": 2, "d": 64, "dtype": "bfloat16", "rows": [row],
           # The same shape in fp32: every byte count doubles.
           "extra_grids": [{"B": 1, "H": 4, "H_kv": 2, "d": 64, "dtype": "float32", "rows": [row]}]}
    r = run_stages(tmp_path, doc)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("B=")]
    assert len(rows) == 2
    assert rows[0] == ["B=1", "H=4/2", "d=64", "1000000", "2.05", "+0.250ms", "1.02", "+0.225ms", "2.37",
                       "+0.100ms", "3.00", "+0.050ms", "2.42", "+0.200ms", "0.825", "1.500"]
    # fp32: twice the bytes in the same times: scores 4.10 TB/s, min 0.5 ms -> +0.000.
    assert rows[1][4:6] == ["4.10", "+0.000ms"]
    assert rows[1][6:8] == ["2.05", "+0.150ms"]  # gather: 614.4e6 B, min 0.15


def test_stages_needs_stage_times(tmp_path):
    doc = {"B": 1, "H": 4, "H_kv": 2, "d": 8,
           "rows": [{"N": 1000, "S": 100, "sdpa_on_S_fwd_bwd_ms": 2.0, "lighthouse_fwd_bwd_ms": 2.5,
                     "lighthouse_over_floor_fwd_bwd": 1.25}]}
    r = run_stages(tmp_path, doc)
    assert r.returncode != 0
    assert "no stage times" in r.stderr and "--stages" in r.stderr
