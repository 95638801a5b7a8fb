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
