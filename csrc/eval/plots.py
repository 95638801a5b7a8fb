"""The figures of `lighthouse eval` and `lighthouse plot` (matplotlib).

Built into the `lighthouse` program (csrc/eval/CMakeLists.txt embeds this
file) and run with python3, so the program needs no Python package from the
source tree. Also runnable by hand:

  python3 csrc/eval/plots.py niah IN.json OUT.png          # passkey heatmap
  python3 csrc/eval/plots.py loss OUT.png IN.json...       # loss by position, one line per result
  python3 csrc/eval/plots.py runs OUT.png RUN_DIR...       # loss curves of runs (arms or run roots)

Inputs are the JSON files the C++ side writes (niah.json, loss.json) and a
run directory's metrics.jsonl / val.jsonl. Exit status: 0 written, 3
matplotlib is missing, 1 anything else (the reason on stderr).
"""

import json
import math
import os
import sys

MISSING_MATPLOTLIB = 3


def die(message):
    print(f"plots.py: {message}", file=sys.stderr)
    sys.exit(1)


try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
except ImportError as e:  # the C++ side turns this into a warning
    print(f"plots.py: matplotlib is not available ({e}); pip install matplotlib", file=sys.stderr)
    sys.exit(MISSING_MATPLOTLIB)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        die(f"cannot read {path}: {e}")


def read_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line cut by a crash
    return out


def si(x, _pos=None):
    """12.3k, 1.2M: axis labels for token counts."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v == int(v) else f"{v:.1f}{suffix}"
    return f"{x:.0f}"


def context_label(n):
    """Token counts: 4096 -> 4K, 98304 -> 96K, 1000 -> 1000."""
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def model_label(meta):
    if not meta:
        return "model"
    label = meta.get("run") or os.path.basename(str(meta.get("checkpoint", "model")))
    parts = []
    if "step" in meta:
        parts.append(f"step {meta['step']}")
    if "attention" in meta:
        parts.append(meta["attention"])
    return f"{label} ({', '.join(parts)})" if parts else label


def save(fig, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    os.replace(tmp, out)
    plt.close(fig)


def plot_niah(in_path, out):
    r = read_json(in_path)
    cells = r.get("cells") or die(f"{in_path} has no cells")
    contexts = sorted({c["context"] for c in cells})
    depths = sorted({c["depth"] for c in cells})
    acc = [[float("nan")] * len(contexts) for _ in depths]
    for c in cells:
        acc[depths.index(c["depth"])][contexts.index(c["context"])] = c["accuracy"]
    trials = r["protocol"]["trials"]

    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(contexts), 1.4 + 0.38 * len(depths)))
    im = ax.imshow(acc, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(contexts)), [context_label(c) for c in contexts])
    ax.set_yticks(range(len(depths)), [f"{d}%" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth (% of the filler)")
    if len(contexts) * len(depths) <= 400:
        for i, row in enumerate(acc):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if 0.25 < v < 0.8 else "white")
    bar = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.04)
    bar.set_label("accuracy (chance 0.10)")
    ax.set_title(
        f"Passkey retrieval: {model_label(r.get('model'))}\n"
        f"mean accuracy {r['mean_accuracy']:.3f}, mean p_correct {r['mean_p_correct']:.3f} "
        f"({trials} trials per cell)",
        fontsize=9)
    save(fig, out)


def loss_results(paths):
    results = []
    for p in paths:
        r = read_json(p)
        results.extend(r["results"] if "results" in r else [r])
    return results


def plot_loss(out, paths):
    results = loss_results(paths)
    if not results:
        die("no loss results to plot")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    edges = set()
    for r in results:
        buckets = [b for b in r["buckets"] if b["tokens"] > 0]
        xs = [math.sqrt(b["first"] * b["last"]) for b in buckets]
        ys = [b["loss"] for b in buckets]
        line, = ax.plot(xs, ys, marker="o", markersize=4,
                        label=f"{model_label(r.get('model'))}: held-out {r['loss']:.4f}")
        for b in buckets:  # each bucket's range as a faint bar
            ax.plot([b["first"], b["last"]], [b["loss"]] * 2, color=line.get_color(), alpha=0.35, linewidth=3,
                    solid_capstyle="butt")
            edges.add(b["last"])
    ax.set_xscale("log", base=2)
    ticks = [1] + sorted(edges)
    ax.set_xticks(ticks, [context_label(t) if t >= 1024 else str(t) for t in ticks])
    ax.set_xlim(0.8, max(ticks) * 1.15)
    ax.set_xlabel("position in the window (tokens of context before the target; log scale)")
    ax.set_ylabel("mean loss (nats per token)")
    shapes = {(r["windows"], r["seq_len"], r["tokens"]) for r in results}
    if len(shapes) == 1:
        w, n, t = shapes.pop()
        ax.set_title(f"Loss by position: {w} held-out windows of {n} tokens ({si(t)} targets per model)", fontsize=10)
    else:
        ax.set_title("Loss by position on held-out windows (window counts and lengths differ: see each run's loss.json)",
                     fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out)


def expand_runs(paths):
    """Run directories: each path is a run (has metrics.jsonl) or a root of runs."""
    runs = []
    for p in paths:
        p = p.rstrip("/") or "/"
        if os.path.exists(os.path.join(p, "metrics.jsonl")):
            runs.append(p)
            continue
        subs = sorted(os.path.join(p, d) for d in os.listdir(p) if os.path.exists(os.path.join(p, d, "metrics.jsonl"))) \
            if os.path.isdir(p) else []
        if not subs:
            die(f"{p} is neither a run directory (metrics.jsonl) nor a directory of runs")
        runs.extend(subs)
    names = [os.path.basename(r) for r in runs]
    if len(set(names)) < len(names):  # the same arm name under several roots: add the root's name
        names = [os.path.join(os.path.basename(os.path.dirname(os.path.abspath(r))), os.path.basename(r))
                 for r in runs]
    return list(zip(names, runs))


def running_median(values, window):
    """Median of the last `window` values at each step: single batches vary
    by more than a nat on a small corpus, and a median keeps a few outlier
    batches from drawing spikes that are not the model's."""
    out = []
    for i in range(len(values)):
        part = sorted(values[max(0, i + 1 - window):i + 1])
        n = len(part)
        out.append(part[n // 2] if n % 2 else 0.5 * (part[n // 2 - 1] + part[n // 2]))
    return out


def time_axis(seconds_max):
    if seconds_max >= 2 * 3600:
        return 3600.0, "wall-clock (hours)"
    if seconds_max >= 2 * 60:
        return 60.0, "wall-clock (minutes)"
    return 1.0, "wall-clock (seconds)"


def plot_runs(out, paths):
    runs = expand_runs(paths)
    data = []
    for name, d in runs:
        m = [r for r in read_jsonl(os.path.join(d, "metrics.jsonl")) if "tokens" in r and "loss" in r]
        if not m:
            die(f"{d}/metrics.jsonl has no steps")
        data.append((name, m, read_jsonl(os.path.join(d, "val.jsonl"))))
    tokens_per_step = {name: m[0]["tokens"] / m[0]["step"] for name, m, _ in data}
    t_unit, t_label = time_axis(max(m[-1]["elapsed_s"] for _, m, _ in data))

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharey=True)
    lows, highs = [], []
    switches = 0  # switch labels stack downwards, one line each
    for i, (name, m, val) in enumerate(data):
        colour = f"C{i}"
        window = max(1, len(m) // 10)
        losses = [r["loss"] for r in m]
        smoothed = running_median(losses, window)
        lows.append(min(smoothed + [v["val_loss"] for v in val]))
        highs.append(max(smoothed[len(smoothed) // 10:] + [v["val_loss"] for v in val[1:]] or smoothed))
        switch = next((r for r in m if r.get("stage") == 2), None)
        xs_by_axis = ([r["tokens"] for r in m], [r["elapsed_s"] / t_unit for r in m])
        for ax, xs in zip(axes, xs_by_axis):
            ax.plot(xs, losses, color=colour, alpha=0.08, linewidth=0.6)
            ax.plot(xs, smoothed, color=colour, linewidth=1.8,
                    label=f"{name}: training (median of {window} steps)" if window > 1 else f"{name}: training")
        if val:
            vx_tokens = [v["step"] * tokens_per_step[name] for v in val]
            vx_time = [v["elapsed_s"] / t_unit for v in val]
            for ax, vx in zip(axes, (vx_tokens, vx_time)):
                ax.plot(vx, [v["val_loss"] for v in val], color=colour, linestyle="--", marker="o", markersize=4,
                        label=f"{name}: validation (final {val[-1]['val_loss']:.4f})")
        if switch is not None and any(r.get("stage") == 1 for r in m):
            k = switch["step"] - 1  # the last Stage-1 step; the switch happens after it
            before = [r for r in m if r["step"] == k]
            at_time = (before[0] if before else switch)["elapsed_s"] / t_unit
            for ax, x in zip(axes, (k * tokens_per_step[name], at_time)):
                ax.axvline(x, color=colour, linestyle=":", linewidth=1.5)
                ax.annotate(f"{name}: dense after step {k}", xy=(x, 1.0),
                            xycoords=("data", "axes fraction"), xytext=(-4, -4 - 11 * switches),
                            textcoords="offset points", ha="right", va="top", fontsize=8, color=colour)
            switches += 1
    lo, hi = min(lows), max(highs)
    pad = 0.08 * (hi - lo if hi > lo else 1.0)
    axes[0].set_ylim(lo - pad, hi + 3 * pad)
    axes[0].set_xlabel("training tokens")
    axes[0].xaxis.set_major_formatter(FuncFormatter(si))
    axes[1].set_xlabel(t_label)
    axes[0].set_ylabel("loss (nats per token)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(4, len(labels)), frameon=False)
    fig.suptitle(f"Training and validation loss: {', '.join(n for n, _, _ in data)}", fontsize=11)
    rows = (len(labels) + 3) // 4
    fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 1))
    save(fig, out)


def main(argv):
    usage = "usage: plots.py niah IN.json OUT.png | loss OUT.png IN.json... | runs OUT.png RUN_DIR..."
    if len(argv) < 3:
        die(usage)
    kind = argv[0]
    if kind == "niah" and len(argv) == 3:
        plot_niah(argv[1], argv[2])
    elif kind == "loss":
        plot_loss(argv[1], argv[2:])
    elif kind == "runs":
        plot_runs(argv[1], argv[2:])
    else:
        die(usage)


if __name__ == "__main__":
    main(sys.argv[1:])
