"""The op's O(N) memory traffic as a bound on Lighthouse / SDPA-on-S, from
the JSON that `lighthouse bench op` writes.

Any implementation of the op must read q and k whole (every token is
scored), read v and dout whole (the coarsest level covers every token), and
write out, dq, dk, dv whole: eight token tensors. It also writes and reads
the gathered sub-sequence tensors outside SDPA: q~, k~, v~ written by the
gather and their gradients read by the gather backward, o~ read by the
scatter, do~ written by the scatter backward: eight [B, H, S, d] tensors.
At the bandwidth of a plain device copy that traffic takes at least
`min` ms, so forward+backward can be no faster than floor + min:

  python3 benchmarks/op_traffic_bound.py docs/data/<bench-op>.json [--gbps 4180]

--gbps: the copy bandwidth (GB/s) to assume; the default is what copy_ of a
dq-sized bf16 tensor reached on an H200 in benchmarks/gather_bench.py
(2026-12-01). Element size from the JSON's dtype (2 for bf16 and fp16).

--stages (for JSON written with `bench op --stages`): where the time above
the floor goes. For each O(N) stage, the bandwidth it reached on the least
traffic it must move, and its excess over that traffic at copy speed (ms):
  scores       reads q, k, v (it pools v's coarse rows in the same pass)
  gather       writes q~, k~, v~ and reads at least one row for each
  scatter      reads o~, writes out
  scatter_bwd  reads dout, writes do~
  gather_bwd   reads dq~, dk~, dv~, writes dq, dk, dv
(select reads scores, not token rows; left out). The gather's reads make
these sums 3 [B, H, S, d] tensors more than the bound above counts.
"""

import argparse
import json

STAGES = ("scores", "gather", "scatter", "scatter_bwd", "gather_bwd")


def stage_bytes(B, N, H, Hkv, d, S, elem):
    """Least bytes each O(N) stage moves (see the module docstring)."""
    tq, tk, sub = B * N * H * d * elem, B * N * Hkv * d * elem, B * H * S * d * elem
    return {"scores": tq + 2 * tk, "gather": 6 * sub, "scatter": sub + tq, "scatter_bwd": tq + sub,
            "gather_bwd": 3 * sub + tq + 2 * tk}


def grids(doc):
    yield doc, doc["rows"]
    for extra in doc.get("extra_grids", []):
        yield extra, extra["rows"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--gbps", type=float, default=4180.0)
    ap.add_argument("--stages", action="store_true", help="per-stage bandwidth and excess over copy speed")
    a = ap.parse_args()
    bw = a.gbps * 1e9
    if a.stages:
        return print_stages(a.json, bw, a.gbps)
    for path in a.json:
        print(f"{path} (copy bandwidth {a.gbps:.0f} GB/s)")
        print(f"{'shape':22s} {'N':>8s} {'S':>6s} {'token GB':>9s} {'sub GB':>7s} {'min ms':>7s} "
              f"{'floor ms':>9s} {'LH-floor':>9s} {'bound':>6s} {'measured':>8s}")
        doc = json.load(open(path))
        for g, rows in grids(doc):
            B, H, Hkv, d = g["B"], g["H"], g["H_kv"], g["d"]
            elem = elem_size(g, doc)
            for r in rows:
                N, S = r["N"], r["S"]
                tok = 4 * B * N * (H + Hkv) * d * elem
                sub = 8 * B * H * S * d * elem
                t = (tok + sub) / bw * 1e3
                flr = r["sdpa_on_S_fwd_bwd_ms"]
                print(f"B={B} H={H}/{Hkv} d={d:<8d} {N:8d} {S:6d} {tok / 1e9:9.2f} {sub / 1e9:7.2f} {t:7.3f} "
                      f"{flr:9.3f} {r['lighthouse_fwd_bwd_ms'] - flr:9.3f} {(flr + t) / flr:5.3f}x "
                      f"{r['lighthouse_over_floor_fwd_bwd']:7.3f}x")


def elem_size(grid, doc):
    """Bytes per element: the grid's dtype, else the document's (bf16 when neither says)."""
    return 4 if grid.get("dtype", doc.get("dtype", "bfloat16")) == "float32" else 2


def print_stages(paths, bw, gbps):
    for path in paths:
        print(f"{path}: TB/s on the least traffic; excess ms over it at {gbps:.0f} GB/s")
        head = " ".join(f"{s:>17s}" for s in STAGES)
        print(f"{'shape':22s} {'N':>8s} {head} {'excess':>7s} {'LH-floor':>9s}")
        doc = json.load(open(path))
        for g, rows in grids(doc):
            B, H, Hkv, d = g["B"], g["H"], g["H_kv"], g["d"]
            elem = elem_size(g, doc)
            for r in rows:
                st = r.get("stages")
                if not st:
                    raise SystemExit(f"{path}: N={r['N']} has no stage times (run `bench op --stages`)")
                nbytes = stage_bytes(B, r["N"], H, Hkv, d, r["S"], elem)
                cells, excess = [], 0.0
                for s in STAGES:
                    ms = st[f"{s}_ms"]
                    extra = ms - nbytes[s] / bw * 1e3
                    excess += extra
                    cells.append(f"{nbytes[s] / ms / 1e9:5.2f} {extra:+6.3f}ms")
                print(f"B={B} H={H}/{Hkv} d={d:<8d} {r['N']:8d} " + " ".join(f"{c:>17s}" for c in cells) +
                      f" {excess:7.3f} {r['lighthouse_fwd_bwd_ms'] - r['sdpa_on_S_fwd_bwd_ms']:9.3f}")


if __name__ == "__main__":
    main()
