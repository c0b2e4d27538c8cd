"""Figures and summary tables of the SwarmSGD experiments (experiments/*.yaml).

    python experiments/figures.py topologies [--results results] [--out results/figures]

reads the run directories under ``results/<name>/`` (written by ``gossipsim sweep``) and
writes ``results/figures/<name>*.png`` plus ``<name>_summary.md`` with the numbers the
experiment's README quotes (``--out experiments/figures`` replaces the committed ones).
Every figure is drawn from the stored metrics; nothing here simulates.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gossipsim.experiment.results import flatten, read_run, run_directories

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


def mean_curve_interpolated(
    frame: pd.DataFrame, x: str, y: str, points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``y`` across runs, each run interpolated linearly onto a common ``x`` grid.

    For an ``x`` the runs do not record at the same values (epochs, or the time of a stop
    on epochs): grouping by the raw values would alternate between single runs. The grid
    spans the range every run covers.
    """
    runs = [part.sort_values(x) for _, part in frame.groupby("run_id")]
    lo = max(float(part[x].iloc[0]) for part in runs)
    hi = min(float(part[x].iloc[-1]) for part in runs)
    grid = np.linspace(lo, hi, points)
    ys = [np.interp(grid, part[x].to_numpy(float), part[y].to_numpy(float)) for part in runs]
    return grid, np.mean(ys, axis=0)


#: A y axis is made logarithmic only when its positive values span at least this ratio.
LOG_SPAN = 20.0


def _auto_log_y(ax: plt.Axes) -> bool:
    """Log y only where the drawn values (lines, markers, bars) span ``LOG_SPAN`` or more."""
    values: list[float] = []
    for line in ax.lines:
        values.extend(np.asarray(line.get_ydata(), dtype=float).ravel().tolist())
    for patch in ax.patches:
        values.append(float(patch.get_height()))
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if offsets.ndim == 2 and offsets.shape[1] == 2:
            values.extend(offsets[:, 1].tolist())
    positive = [v for v in values if math.isfinite(v) and v > 0]
    if positive and max(positive) / min(positive) >= LOG_SPAN:
        ax.set_yscale("log")
        return True
    return False


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
            gap = sel.groupby("run_id")["spectral_gap"].first().mean()  # over replicates
            x, y = mean_curve(sel, "time", "loss")
            axes[0, col].plot(x, y, label=f"{kind} (λ₂={gap:.3g})")
            x, y = mean_curve(sel, "time", "consensus")
            per_node = sel.groupby("time")["interactions_per_node"].mean().to_numpy()
            axes[1, col].plot(per_node, sel.groupby("time")["loss"].mean().to_numpy(), label=kind)
        axes[0, col].set_title(f"n = {n}")
        axes[0, col].set_xlabel("simulated time (s)")
        axes[0, col].set_ylabel("training loss (mean model)")
        _auto_log_y(axes[0, col])
        axes[1, col].set_xlabel("interactions per node")
        axes[1, col].set_ylabel("training loss (mean model)")
        _auto_log_y(axes[1, col])
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
    _auto_log_y(axes[0])
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
            _auto_log_y(ax)
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
    final = rows.sort_values("time").groupby("run_id").tail(1).copy()
    # Per n: a loss every case reaches (the worst final loss at that n, plus 2%).
    targets = (final.groupby("topology.n")["loss"].max() * 1.02).to_dict()
    summary = []
    for _, frame in rows.groupby("run_id"):
        frame = frame.sort_values("time")
        n = int(frame["topology.n"].iloc[0])
        last = frame.iloc[-1]
        summary.append(
            {
                "case": frame["case"].iloc[0],
                "n": n,
                "target": targets[n],
                "final_loss": float(last["loss"]),
                "bits_to_target": first_reach(frame, "loss", targets[n], "bits"),
                "time_to_target": first_reach(frame, "loss", targets[n], "time"),
                "time": float(last["time"]),
                "s_per_step": float(last["time"] * n / last["local_steps"]),
                "idle_fraction": float(last["idle_time"] / (last["time"] * n)),
                "bits_per_step": float(last["bits"] / last["local_steps"]),
                "comm_s_per_step": float(last["comm_time"] / last["local_steps"]),
            }
        )
    table = pd.DataFrame(summary).sort_values(["n", "bits_to_target"])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    smallest = rows[rows["topology.n"] == sizes[0]]
    for case, part in smallest.groupby("case"):
        axes[0].plot(part["bits"], part["loss"], label=case)
    axes[0].set_xscale("log")
    _auto_log_y(axes[0])
    axes[0].set_xlabel("bits sent (all nodes)")
    axes[0].set_ylabel("training loss (mean model)")
    axes[0].set_title(f"n = {sizes[0]}")
    axes[0].legend(fontsize=7)
    for case, part in table.groupby("case"):
        part = part.sort_values("n")
        axes[1].plot(part["n"], part["s_per_step"], "o-", label=case)
        axes[2].plot(part["n"], part["idle_fraction"], "o-", label=case)
    axes[1].set_ylabel("simulated seconds per local step (per node)")
    axes[1].set_title("compute: lognormal, mean 1 s", fontsize=9)
    _auto_log_y(axes[1])
    axes[2].set_ylabel("idle fraction (node-time spent waiting)")
    axes[2].set_ylim(-0.02, 1.0)
    for ax in axes[1:]:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("nodes n")
        ax.legend(fontsize=7, loc="upper left")
    _save(fig, out, "communication")
    return (
        "Target loss per n: the worst final loss at that n, plus 2% "
        + ", ".join(f"(n = {n}: {t:.4g})" for n, t in targets.items())
        + ". bits_per_step and comm_s_per_step are the cost model's charges per local step"
        " (README, Messages and their cost), not outcomes.\n\n"
        + _markdown(table.drop(columns=["target"]))
    )


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
        axes[0].plot(*mean_curve_interpolated(part, "time", "accuracy"), label=case)
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
            ax.plot(*mean_curve_interpolated(sel, "epochs", "accuracy"), label=case)
        ax.set_title(kind)
        ax.set_xlabel("epochs")
        ax.set_ylabel("held-out accuracy (mean model)")
        ax.legend(fontsize=7)
    _save(fig, out, "noniid")
    return _markdown(table)


SCHEME_ORDER = ["uncoded", "ignore_stragglers", "fr", "cr", "partial"]
STRAGGLER_ORDER = ["none", "persistent", "lognormal-0.5", "lognormal-1", "lognormal-2", "transient"]


def _ordered(values, order: list[str]) -> list[str]:
    present = set(values)
    return [v for v in order if v in present] + sorted(present - set(order))


def _iteration_errors(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per decoded iteration: the metrics are recorded more often than iterations
    end, so the first row after each iteration carries that iteration's ``decode_error``."""
    done = rows[rows["iteration"] >= 1]
    return done.sort_values("time").drop_duplicates(["run_id", "iteration"])


def gradient_coding(results: Path, out: Path) -> str:
    """Gradient coding schemes across straggler models (experiments/gradient_coding.yaml) and
    the protocol's approximate mode against its deadline (gradient_coding_deadline.yaml)."""
    rows, _ = load(results, "gradient_coding")
    cases = _ordered(rows["case"].unique(), STRAGGLER_ORDER)
    schemes = _ordered(rows["algorithm.scheme"].unique(), SCHEME_ORDER)
    final = rows.sort_values("time").groupby("run_id").tail(1)

    # Time per iteration (mean over each run's iterations, then over seeds).
    per = (
        final.groupby(["case", "algorithm.scheme"])
        .agg(
            s_per_iteration=("iteration_time", "mean"),
            sd_over_seeds=("iteration_time", "std"),
            decode_error_median=("decode_error_median", "mean"),
            wasted_chunks_per_iteration=("chunks_wasted", "mean"),
            final_loss=("loss", "mean"),
            time=("time", "mean"),
        )
        .reset_index()
    )
    iterations = final.groupby(["case", "algorithm.scheme"])["iteration"].mean().to_numpy()
    per["wasted_chunks_per_iteration"] /= iterations
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / len(schemes)
    x = np.arange(len(cases))
    means = per["s_per_iteration"].to_numpy(dtype=float)
    log = bool(np.nanmax(means) / np.nanmin(means[means > 0]) >= LOG_SPAN)
    for k, scheme in enumerate(schemes):
        sel = per[per["algorithm.scheme"] == scheme].set_index("case").reindex(cases)
        mean = sel["s_per_iteration"].to_numpy(dtype=float)
        sd = np.nan_to_num(sel["sd_over_seeds"].to_numpy(dtype=float))
        # On a log axis mean - sd <= 0 has no place: the lower bar stops at mean / 10.
        lower = np.minimum(sd, 0.9 * mean) if log else sd
        ax.bar(
            x + (k - (len(schemes) - 1) / 2) * width,
            mean,
            width,
            yerr=np.vstack([lower, sd]),
            capsize=2,
            label=scheme,
        )
    ax.set_xticks(x, cases)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("straggler model")
    ax.set_ylabel("seconds per PS iteration (mean, ± sd over seeds)")
    ax.set_title("24 workers, load 3: time per iteration by scheme")
    ax.legend(fontsize=8, ncol=len(schemes))
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, out, "gradient_coding")

    # Loss vs time: suboptimality against the best loss any run of the same seed reaches.
    best = rows.groupby("seed")["loss"].min()
    rows["gap"] = rows["loss"] - rows["seed"].map(best)
    first_seed = sorted(rows["seed"].unique())[0]
    cols = 3
    nrows = math.ceil(len(cases) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.3 * nrows), squeeze=False)
    for ax, case in zip(axes.flat, cases, strict=False):
        for scheme in schemes:
            sel = rows[
                (rows["case"] == case)
                & (rows["algorithm.scheme"] == scheme)
                & (rows["seed"] == first_seed)
            ]
            sel = sel[sel["gap"] > 1e-7].sort_values("time")  # below: rounding differences
            ax.plot(sel["time"], sel["gap"], label=scheme)
        _auto_log_y(ax)
        ax.set_ylim(bottom=1e-7)
        ax.set_title(case, fontsize=9)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("loss − best loss")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    _save(fig, out, "gradient_coding_loss")

    # Speed-up of the protocol (exact) over the others, per seed then averaged.
    wide = final.pivot_table(
        index=["case", "seed"], columns="algorithm.scheme", values="iteration_time"
    )
    speed = pd.DataFrame({"case": [c for c, _ in wide.index]})
    for scheme in schemes:
        if scheme != "partial" and "partial" in wide:
            speed[f"{scheme}/partial"] = (wide[scheme] / wide["partial"]).to_numpy()
    speed = speed.groupby("case").mean().reindex(cases).reset_index()

    # Time to a loss within 1e-4 of the best (every exact run reaches it).
    reach = []
    for _, frame in rows.groupby("run_id"):
        frame = frame.sort_values("time")
        reach.append(
            {
                "case": frame["case"].iloc[0],
                "algorithm.scheme": frame["algorithm.scheme"].iloc[0],
                "time_to_gap_1e-4": first_reach(frame, "gap", 1e-4, "time"),
            }
        )
    reach = pd.DataFrame(reach).groupby(["case", "algorithm.scheme"], as_index=False).mean()
    per = per.merge(reach, on=["case", "algorithm.scheme"])
    per["case"] = pd.Categorical(per["case"], cases, ordered=True)
    per["algorithm.scheme"] = pd.Categorical(per["algorithm.scheme"], schemes, ordered=True)
    per = per.sort_values(["case", "algorithm.scheme"]).drop(columns=["time"])
    text = [
        "## Time per iteration (exact schemes: decode error ~1e-13)\n",
        f"Means over {final['seed'].nunique()} seeds of each run's mean seconds per iteration; "
        "`time_to_gap_1e-4`: simulated seconds until the loss is within 1e-4 of the best "
        "loss of its seed.\n",
        _markdown(per),
        "\n## Speed-up of the protocol (exact): seconds per iteration of X / of partial\n",
        _markdown(speed),
    ]

    # Decode error against the deadline (approximate mode), if that sweep was run.
    if not (results / "gradient_coding_deadline").exists():
        return "\n".join(text)
    drows, _ = load(results, "gradient_coding_deadline")
    its = _iteration_errors(drows)
    its = its.assign(sq=its["decode_error"] ** 2, exact=its["decode_error"] < 1e-8)
    dfinal = drows.sort_values("time").groupby("run_id").tail(1)
    times = dfinal.groupby(["algorithm.lr", "case", "algorithm.scheme", "algorithm.deadline"])[
        ["iteration_time", "loss"]
    ].mean()
    table = (
        its.groupby(["algorithm.lr", "case", "algorithm.scheme", "algorithm.deadline"])
        .agg(
            iterations=("iteration", "size"),
            mean_error=("decode_error", "mean"),
            median_error=("decode_error", "median"),
            mse=("sq", "mean"),
            exact_fraction=("exact", "mean"),
        )
        .join(times)
        .reset_index()
    )
    table.loc[table["algorithm.scheme"] == "ignore_stragglers", "algorithm.deadline"] = math.nan
    frozen = table[table["algorithm.lr"] == 0.0]
    dcases = _ordered(frozen["case"].unique(), STRAGGLER_ORDER)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    floor = 1e-8  # exact decodes (error ~1e-16) are drawn at this floor
    for k, case in enumerate(dcases):
        color = colors[k % len(colors)]
        part = frozen[(frozen["case"] == case) & (frozen["algorithm.scheme"] == "partial")]
        part = part.sort_values("algorithm.deadline")
        ign = frozen[(frozen["case"] == case) & (frozen["algorithm.scheme"] == "ignore_stragglers")]
        mse = part["mse"].clip(lower=floor)
        axes[0].plot(part["algorithm.deadline"], mse, "o-", color=color, label=case)
        axes[1].plot(part["iteration_time"], mse, "o-", color=color, label=f"partial, {case}")
        if not ign.empty:
            axes[0].axhline(float(ign["mse"].iloc[0]), color=color, ls=":", lw=1)
            axes[1].plot(
                ign["iteration_time"], ign["mse"], "*", ms=13, color=color, markeredgecolor="k"
            )
    for ax in axes:
        _auto_log_y(ax)
        ax.set_ylabel("decode MSE  mean ‖ĝ − g‖² / ‖g‖²")
        ax.grid(True, alpha=0.3)
        ax.axhline(floor, color="grey", lw=0.5)
    axes[0].set_xlabel("deadline (s after the model broadcast)")
    axes[0].set_title("protocol, approximate mode (dotted: ignore_stragglers)", fontsize=9)
    axes[1].set_xlabel("seconds per iteration")
    axes[1].set_title("error vs time per iteration (stars: ignore_stragglers)", fontsize=9)
    axes[0].legend(fontsize=7, title=f"model frozen at w = 0; exact = {floor:g}", title_fontsize=7)
    _save(fig, out, "gradient_coding_deadline")

    table["case"] = pd.Categorical(table["case"], dcases, ordered=True)
    table = table.sort_values(["algorithm.lr", "case", "algorithm.scheme", "algorithm.deadline"])
    text += [
        "\n## Approximate mode: decode error vs deadline\n",
        "Per iteration: relative error ‖ĝ − g‖/‖g‖ (g the true full gradient); `mse` is the "
        "mean of its square, `exact_fraction` the share of iterations decoded exactly "
        "(error < 1e-8); `iteration_time` in seconds. lr 0: the model stays at w = 0, so every "
        "iteration decodes the same gradient. lr 2: training, where ‖g‖ → 0 near the optimum "
        "and the relative error of any approximate decode blows up; `loss`: after the run's "
        "100 iterations (the exact schemes reach 0.4777). "
        "ignore_stragglers has no deadline (it waits for the fastest 22 of 24).\n",
        _markdown(table, ".4g"),
    ]
    return "\n".join(text)


EXPERIMENTS: dict[str, Callable[[Path, Path], str]] = {
    "topologies": topologies,
    "heterogeneity": heterogeneity,
    "communication": communication,
    "quantization": quantization,
    "local_steps": local_steps,
    "noniid": noniid,
    "gradient_coding": gradient_coding,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "name", choices=sorted(EXPERIMENTS), help="the experiment (its results/<name>/ sweep)"
    )
    parser.add_argument(
        "--results",
        default="results",
        type=Path,
        help="directory holding the sweep's results/<name>/ (default: results)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where figures and <name>_summary.md go (default: <results>/figures; "
        "experiments/figures holds the committed ones)",
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = args.results / "figures"
    args.out.mkdir(parents=True, exist_ok=True)
    summary = EXPERIMENTS[args.name](args.results, args.out)
    path = args.out / f"{args.name}_summary.md"
    path.write_text(summary + "\n")
    print(summary)
    print(f"\nwrote {args.out}/{args.name}*.png and {path}")


if __name__ == "__main__":
    main()
