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
(2026-12-01). Element size 2 (bf16 or fp16).
"""

import argparse
import json


def grids(doc):
    yield doc, doc["rows"]
    for extra in doc.get("extra_grids", []):
        yield extra, extra["rows"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--gbps", type=float, default=4180.0)
    a = ap.parse_args()
    bw = a.gbps * 1e9
    for path in a.json:
        print(f"{path} (copy bandwidth {a.gbps:.0f} GB/s)")
        print(f"{'shape':22s} {'N':>8s} {'S':>6s} {'token GB':>9s} {'sub GB':>7s} {'min ms':>7s} "
              f"{'floor ms':>9s} {'LH-floor':>9s} {'bound':>6s} {'measured':>8s}")
        for g, rows in grids(json.load(open(path))):
            B, H, Hkv, d = g["B"], g["H"], g["H_kv"], g["d"]
            for r in rows:
                N, S = r["N"], r["S"]
                tok = 4 * B * N * (H + Hkv) * d * 2
                sub = 8 * B * H * S * d * 2
                t = (tok + sub) / bw * 1e3
                flr = r["sdpa_on_S_fwd_bwd_ms"]
                print(f"B={B} H={H}/{Hkv} d={d:<8d} {N:8d} {S:6d} {tok / 1e9:9.2f} {sub / 1e9:7.2f} {t:7.3f} "
                      f"{flr:9.3f} {r['lighthouse_fwd_bwd_ms'] - flr:9.3f} {(flr + t) / flr:5.3f}x "
                      f"{r['lighthouse_over_floor_fwd_bwd']:7.3f}x")


if __name__ == "__main__":
    main()
