"""Figures and summary tables of the SwarmSGD experiments (experiments/*.yaml).

    python experiments/figures.py topologies [--results results] [--out experiments/figures]

reads the run directories under ``results/<name>/`` (written by ``gossipsim sweep``) and
writes ``experiments/figures/<name>*.png`` plus ``<name>_summary.md`` with the numbers the
experiment's README quotes. Every figure is drawn from the stored metrics; nothing here
simulates.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gossipsim.results import flatten, read_run, run_directories

ALGORITHM_ORDER = ["swarmsgd", "adpsgd", "sgp", "dpsgd", "local_sgd", "allreduce"]


def load(results: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics rows with config columns, one row per run with meta facts)."""
    frames, runs = [], []
    for path in run_directories(results / name):
        config, meta, table = read_run(path)
        flat = flatten(config)
        info = {
            **flat,
            "run_id": meta.get("run_id", path.name),
            "case": (meta.get("sweep") or {}).get("case"),
            "status": meta.get("status"),
            "spectral_gap": meta.get("spectral_gap"),
            "wall_time": meta.get("wall_time"),
        }
        runs.append(info)
        frame = table.to_pandas()
        for key, value in info.items():
            frame[key] = value if not isinstance(value, list) else str(value)
        frames.append(frame)
    if not frames:
        raise SystemExit(f"no runs under {results / name}: run `gossipsim sweep` first")
    return pd.concat(frames, ignore_index=True), pd.DataFrame(runs)


def first_reach(frame: pd.DataFrame, column: str, target: float, x: str) -> float:
    """The first ``x`` at which ``column`` drops to ``target`` (NaN if never)."""
    hit = frame[frame[column] <= target]
    return float(hit[x].iloc[0]) if len(hit) else math.nan


def mean_curve(frame: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``y`` across runs at each ``x`` on their shared recording grid."""
    grouped = frame.groupby(x)[y].mean()
    return grouped.index.to_numpy(), grouped.to_numpy()


def _save(fig: plt.Figure, out: Path, stem: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            cells.append(format(v, floatfmt) if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def topologies(results: Path, out: Path) -> str:
    rows, runs = load(results, "topologies")
    rows["interactions_per_node"] = rows["interactions"] / rows["topology.n"]
    sizes = sorted(rows["topology.n"].unique())
    kinds = ["ring", "torus", "hypercube", "random_regular", "complete"]
    fig, axes = plt.subplots(2, len(sizes), figsize=(4.2 * len(sizes), 7), squeeze=False)
    for col, n in enumerate(sizes):
        for kind in kinds:
            sel = rows[(rows["topology.n"] == n) & (rows["topology.kind"] == kind)]
            if sel.empty:
                continue
            gap = sel["spectral_gap"].iloc[0]
            x, y = mean_curve(sel, "time", "loss")
            axes[0, col].plot(x, y, label=f"{kind} (λ₂={gap:.3g})")
            x, y = mean_curve(sel, "time", "consensus")
            per_node = sel.groupby("time")["interactions_per_node"].mean().to_numpy()
            axes[1, col].plot(per_node, sel.groupby("time")["loss"].mean().to_numpy(), label=kind)
        axes[0, col].set_title(f"n = {n}")
        axes[0, col].set_xlabel("simulated time (s)")
        axes[0, col].set_ylabel("training loss (mean model)")
        axes[0, col].set_yscale("log")
        axes[1, col].set_xlabel("interactions per node")
        axes[1, col].set_ylabel("training loss (mean model)")
        axes[1, col].set_yscale("log")
        axes[0, col].legend(fontsize=7)
    _save(fig, out, "topologies")

    final = rows.sort_values("time").groupby("run_id").tail(1)
    # Per n: a loss every topology reaches (the worst final loss, plus 2%).
    targets = (final.groupby("topology.n")["loss"].max() * 1.02).to_dict()
    summary = []
    for _, frame in rows.groupby("run_id"):
        frame = frame.sort_values("time")
        target = targets[frame["topology.n"].iloc[0]]
        summary.append(
            {
                "topology": frame["topology.kind"].iloc[0],
                "n": int(frame["topology.n"].iloc[0]),
                "lambda2": float(frame["spectral_gap"].iloc[0]),
                "final_loss": float(frame["loss"].iloc[-1]),
                "mean_consensus": float(frame["consensus"].iloc[len(frame) // 2 :].mean()),
                "target": target,
                "time_to_target": first_reach(frame, "loss", target, "time"),
            }
        )
    table = (
        pd.DataFrame(summary)
        .groupby(["n", "topology"], as_index=False)
        .mean(numeric_only=True)
        .sort_values(["n", "lambda2"])
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for n in sizes:
        sel = table[table["n"] == n]
        axes[0].plot(sel["lambda2"], sel["mean_consensus"], "o-", label=f"n = {n}")
        axes[1].plot(sel["lambda2"], sel["time_to_target"], "o-", label=f"n = {n}")
        for _, r in sel.iterrows():
            axes[0].annotate(r["topology"], (r["lambda2"], r["mean_consensus"]), fontsize=6)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("λ₂ (spectral gap of the Laplacian)")
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("consensus distance, second half of the run")
    axes[1].set_ylabel("time to the target loss of its n (s)")
    _save(fig, out, "topologies_lambda2")
    return "Target loss per n: the worst final loss at that n, plus 2%.\n\n" + _markdown(table)


def heterogeneity(results: Path, out: Path) -> str:
    rows, runs = load(results, "heterogeneity")
    sigmas = sorted(rows["compute.sigma"].unique())
    fractions = sorted(rows["compute.stragglers.fraction"].unique())
    fig, axes = plt.subplots(
        len(fractions),
        len(sigmas),
        figsize=(3.4 * len(sigmas), 2.8 * len(fractions)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for r, fraction in enumerate(fractions):
        for c, sigma in enumerate(sigmas):
            ax = axes[r, c]
            sel = rows[
                (rows["compute.sigma"] == sigma) & (rows["compute.stragglers.fraction"] == fraction)
            ]
            for kind in ALGORITHM_ORDER:
                part = sel[sel["algorithm.kind"] == kind]
                if not part.empty:
                    ax.plot(*mean_curve(part, "time", "loss"), label=kind)
            ax.set_yscale("log")
            ax.set_title(f"σ={sigma:g}, stragglers {fraction:.0%}", fontsize=9)
            if r == len(fractions) - 1:
                ax.set_xlabel("simulated time (s)")
            if c == 0:
                ax.set_ylabel("training loss")
    axes[0, 0].legend(fontsize=7)
    _save(fig, out, "heterogeneity")
    final = rows.sort_values("time").groupby("run_id").tail(1)
    target = float(final["loss"].median())
    summary = []
    for _, frame in rows.groupby("run_id"):
        frame = frame.sort_values("time")
        summary.append(
            {
                "algorithm": frame["algorithm.kind"].iloc[0],
                "sigma": float(frame["compute.sigma"].iloc[0]),
                "stragglers": float(frame["compute.stragglers.fraction"].iloc[0]),
                "final_loss": float(frame["loss"].iloc[-1]),
                "epochs": float(frame["epochs"].iloc[-1]),
                "idle_fraction": float(
                    frame["idle_time"].iloc[-1]
                    / (frame["time"].iloc[-1] * frame["topology.n"].iloc[0])
                ),
                "time_to_target": first_reach(frame, "loss", target, "time"),
            }
        )
    table = pd.DataFrame(summary).sort_values(["stragglers", "sigma", "algorithm"])
    return f"Target loss (median final loss) {target:.4g}.\n\n" + _markdown(table)


def communication(results: Path, out: Path) -> str:
    rows, runs = load(results, "communication")
    rows["case"] = rows["case"].fillna(rows["algorithm.kind"])
    sizes = sorted(rows["topology.n"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    smallest = rows[rows["topology.n"] == sizes[0]]
    for case, part in smallest.groupby("case"):
        axes[0].plot(part["bits"], part["loss"], label=case)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("bits sent (all nodes)")
    axes[0].set_ylabel("training loss (mean model)")
    axes[0].set_title(f"n = {sizes[0]}")
    axes[0].legend(fontsize=7)
    final = rows.sort_values("time").groupby("run_id").tail(1).copy()
    final["comm_per_step"] = final["comm_time"] / final["local_steps"]
    for case, part in final.groupby("case"):
        part = part.sort_values("topology.n")
        axes[1].plot(part["topology.n"], part["comm_per_step"], "o-", label=case)
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("nodes n")
    axes[1].set_ylabel("communication time per SGD step per node (s)")
    axes[1].legend(fontsize=7)
    _save(fig, out, "communication")
    target = float(final[final["topology.n"] == sizes[0]]["loss"].max()) * 1.02
    summary = []
    for _, frame in rows.groupby("run_id"):
        frame = frame.sort_values("time")
        summary.append(
            {
                "case": frame["case"].iloc[0],
                "n": int(frame["topology.n"].iloc[0]),
                "final_loss": float(frame["loss"].iloc[-1]),
                "bits_to_target": first_reach(frame, "loss", target, "bits"),
                "time_to_target": first_reach(frame, "loss", target, "time"),
                "comm_s_per_step": float(
                    frame["comm_time"].iloc[-1] / frame["local_steps"].iloc[-1]
                ),
            }
        )
    table = pd.DataFrame(summary).sort_values(["n", "bits_to_target"])
    return f"Target loss {target:.4g} (every n = {sizes[0]} run reaches it).\n\n" + _markdown(table)


def _final_by_case(rows: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    final = rows.sort_values("time").groupby("run_id").tail(1)
    return (
        final.groupby(group)
        .agg(
            accuracy=("accuracy", "mean"),
            accuracy_min=("accuracy", "min"),
            accuracy_max=("accuracy", "max"),
            loss=("loss", "mean"),
            time=("time", "mean"),
            epochs=("epochs", "mean"),
            interactions=("interactions", "mean"),
            bits=("bits", "mean"),
            decode_failures=("decode_failures", "mean"),
        )
        .reset_index()
    )


def quantization(results: Path, out: Path) -> str:
    rows, _ = load(results, "quantization")
    table = _final_by_case(rows, ["case"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for case, part in rows.groupby("case"):
        axes[0].plot(*mean_curve(part, "time", "accuracy"), label=case)
    axes[0].set_xlabel("simulated time (s)")
    axes[0].set_ylabel("held-out accuracy (mean model)")
    axes[0].legend(fontsize=7)
    axes[1].bar(table["case"], table["accuracy"])
    axes[1].errorbar(
        table["case"],
        table["accuracy"],
        yerr=[table["accuracy"] - table["accuracy_min"], table["accuracy_max"] - table["accuracy"]],
        fmt="none",
        color="k",
    )
    axes[1].set_ylim(max(0.0, table["accuracy_min"].min() - 0.05), 1.0)
    axes[1].set_ylabel("final held-out accuracy (min–max over seeds)")
    axes[1].tick_params(axis="x", rotation=30)
    _save(fig, out, "quantization")
    return _markdown(table)


def local_steps(results: Path, out: Path) -> str:
    rows, _ = load(results, "local_steps")
    table = _final_by_case(rows, ["case", "algorithm.local_steps.value"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for case, part in table.groupby("case"):
        ax.plot(part["algorithm.local_steps.value"], part["accuracy"], "o-", label=case)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("local steps H")
    ax.set_ylabel("final held-out accuracy")
    ax.legend()
    _save(fig, out, "local_steps")
    return _markdown(table)


def noniid(results: Path, out: Path) -> str:
    rows, _ = load(results, "noniid")
    table = _final_by_case(rows, ["objective.kind", "case"])
    kinds = sorted(table["objective.kind"].unique())
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = rows[rows["objective.kind"] == kind]
        for case, sel in part.groupby("case"):
            ax.plot(*mean_curve(sel, "epochs", "accuracy"), label=case)
        ax.set_title(kind)
        ax.set_xlabel("epochs")
        ax.set_ylabel("held-out accuracy (mean model)")
        ax.legend(fontsize=7)
    _save(fig, out, "noniid")
    return _markdown(table)


EXPERIMENTS: dict[str, Callable[[Path, Path], str]] = {
    "topologies": topologies,
    "heterogeneity": heterogeneity,
    "communication": communication,
    "quantization": quantization,
    "local_steps": local_steps,
    "noniid": noniid,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(EXPERIMENTS))
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--out", default=Path(__file__).parent / "figures", type=Path)
    args = parser.parse_args()
    summary = EXPERIMENTS[args.name](args.results, args.out)
    path = args.out / f"{args.name}_summary.md"
    path.write_text(summary + "\n")
    print(summary)
    print(f"\nwrote {args.out}/{args.name}*.png and {path}")


if __name__ == "__main__":
    main()
