"""The simulator against real runs on this machine: predicted vs measured loss over time.

    python experiments/sim_vs_real.py [--out results/sim_vs_real] [--time 3] [--quick]

For every case — blocking SwarmSGD, non-blocking SwarmSGD and D-PSGD (Lian et al.'s form);
2, 4 and 8 processes; H = 1 and 4 local steps (SwarmSGD only); all nodes equally fast, or
node 0 made 3× slower by sleeping — it runs the algorithm for real (``gossipsim real``:
one OS process per node, models in shared memory, real locks and barriers), then
simulates the same config twice from what was measured: the measured step times replayed
(``compute: {kind: trace, mode: replay}``) and the distribution ``gossipsim fit`` picks
(slowed nodes as persistent stragglers). Network latency in the simulation is the median
measured exchange (lock and average, lock waits excluded; half of it per message for
non-blocking SwarmSGD's two waited messages) or, for D-PSGD, the measured time a round
took beyond its slowest step; bandwidth infinite.

Writes under ``--out``: ``runs/<case>/`` (trace.csv, exchanges.csv, curve.csv, meta.json of
each real run), ``curves.csv`` (measured and predicted loss at the measured times),
``summary.csv`` and ``sim_vs_real_summary.md`` (errors per case), ``sim_vs_real.png`` /
``.pdf`` (curves) and ``sim_vs_real_errors.png`` / ``.pdf`` (time to target and local
steps, predicted against measured). About 3 minutes on 2 cores at the default size.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gossipsim.experiment.config import validate_data  # noqa: E402
from gossipsim.real import compare, run_real  # noqa: E402

#: The problem: softmax regression on 6,000 synthetic samples with 300 features and 10
#: classes, minibatches of 256 — a local step of ~0.2-0.3 ms of numpy on this machine, long
#: enough that Python's own overhead per step is a small part of it, short enough that a
#: few seconds hold thousands of steps per node.
BASE: dict[str, Any] = {
    "name": "sim-vs-real",
    "seed": 11,
    "objective": {
        "kind": "softmax",
        "dataset": {
            "kind": "synthetic",
            "n_samples": 6000,
            "n_features": 300,
            "n_classes": 10,
            "noise": 0.1,
        },
        "batch_size": 256,
    },
    "topology": {"kind": "complete", "n": 4},
    "algorithm": {"kind": "swarmsgd", "lr": 0.002},
    "stop": {"time": 3.0},
    "record": {"every": 0.1},
}

ALGORITHMS = {
    "blocking": {"kind": "swarmsgd", "nonblocking": False},
    "nonblocking": {"kind": "swarmsgd", "nonblocking": True},
    "dpsgd": {"kind": "dpsgd"},
}
LABELS = {
    "blocking": "SwarmSGD, blocking",
    "nonblocking": "SwarmSGD, non-blocking",
    "dpsgd": "D-PSGD (Lian)",
}
SLOWDOWN = 3.0


@dataclass(frozen=True)
class Case:
    algorithm: str
    procs: int
    H: int
    slow: bool

    @property
    def name(self) -> str:
        return f"{self.algorithm}-n{self.procs}-H{self.H}-{'slow' if self.slow else 'even'}"

    def config(self, seconds: float) -> Any:
        algorithm: dict[str, Any] = {**ALGORITHMS[self.algorithm], "lr": BASE["algorithm"]["lr"]}
        if algorithm["kind"] == "swarmsgd":
            algorithm["local_steps"] = {"kind": "fixed", "value": self.H}
        data = {
            **BASE,
            "name": self.name,
            "topology": {"kind": "complete", "n": self.procs},
            "algorithm": algorithm,
            "stop": {"time": seconds},
        }
        return validate_data(data)


def cases(quick: bool) -> list[Case]:
    procs = [2, 4] if quick else [2, 4, 8]
    out = []
    for algorithm in ALGORITHMS:
        for n in procs:
            for H in [1] if algorithm == "dpsgd" or quick else [1, 4]:
                for slow in (False, True):
                    out.append(Case(algorithm, n, H, slow))
    return out


def run_case(case: Case, seconds: float, runs: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """One real run and its two simulations: a summary row and the curves."""
    slow = {0: SLOWDOWN} if case.slow else {}
    real = run_real(case.config(seconds), slow=slow)
    directory = real.write(runs / case.name)
    trace = directory / "trace.csv"
    row: dict[str, Any] = {
        "case": case.name,
        "algorithm": case.algorithm,
        "procs": case.procs,
        "H": case.H,
        "slow": case.slow,
        "measured_steps": int(real.step_node.size),
        "median_step_ms": float(np.median(real.step_duration)) * 1e3,
        "mean_step_ms": float(np.mean(real.step_duration)) * 1e3,
        "exchange_us": real.exchange_time * 1e6,
        "round_overhead_ms": real.round_overhead * 1e3,
        "loss_start": float(real.curve_loss[0]),
        "loss_end": float(real.curve_loss[-1]),
    }
    curves = pd.DataFrame({"time": real.curve_time, "measured": real.curve_loss})
    for source, fitted in (("trace", False), ("fitted", True)):
        comparison = compare(real, trace, fitted=fitted)
        summary = comparison.summary()
        row.update({f"{source}_{key}": value for key, value in summary.items()})
        predicted = np.full(real.curve_time.shape, math.nan)
        predicted[: comparison.predicted.size] = comparison.predicted
        curves[source] = predicted
    row["target_loss"] = row.pop("trace_target_loss")
    row["measured_time_to_target_s"] = row.pop("trace_measured_time_to_target_s")
    row.pop("fitted_target_loss")
    row.pop("fitted_measured_time_to_target_s")
    row.pop("fitted_measured_steps")
    row.pop("trace_measured_steps")
    curves.insert(0, "case", case.name)
    return row, curves


# -- figures and tables ----------------------------------------------------------------------


def _save(fig: plt.Figure, out: Path, stem: str) -> None:
    for suffix in (".png", ".pdf"):
        fig.savefig(out / f"{stem}{suffix}", dpi=150, bbox_inches="tight")
    plt.close(fig)


def curves_figure(summary: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    """Rows: algorithms; columns: process counts. Colour: the H/slow variant; line style:
    measured (solid), replayed trace (dashed), fitted model (dotted)."""
    algorithms = [a for a in ALGORITHMS if a in set(summary["algorithm"])]
    procs = sorted(summary["procs"].unique())
    pairs = zip(summary["H"], summary["slow"], strict=True)
    variants = sorted({(int(h), bool(s)) for h, s in pairs})
    colours = dict(zip(variants, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(
        len(algorithms), len(procs), figsize=(3.4 * len(procs), 2.6 * len(algorithms)),
        sharex=True, squeeze=False,
    )  # fmt: skip
    styles = {"measured": "-", "trace": "--", "fitted": ":"}
    for r, algorithm in enumerate(algorithms):
        for c, n in enumerate(procs):
            ax = axes[r, c]
            chosen = summary[(summary["algorithm"] == algorithm) & (summary["procs"] == n)]
            for _, row in chosen.iterrows():
                part = curves[curves["case"] == row["case"]]
                colour = colours[(int(row["H"]), bool(row["slow"]))]
                for source, style in styles.items():
                    ax.plot(part["time"], part[source], style, color=colour, lw=1.3)
            ax.set_title(f"{LABELS[algorithm]}, {n} processes", fontsize=9)
            ax.grid(alpha=0.3)
            if r == len(algorithms) - 1:
                ax.set_xlabel("wall-clock time (s)")
            if c == 0:
                ax.set_ylabel("training loss\n(mean model)")
    handles = [
        plt.Line2D([], [], color=colours[v], lw=2,
                   label=f"H = {v[0]}, " + (f"node 0 {SLOWDOWN:g}× slower" if v[1] else "even"))
        for v in variants
    ] + [
        plt.Line2D([], [], color="black", ls=styles["measured"], label="measured (real run)"),
        plt.Line2D([], [], color="black", ls=styles["trace"], label="simulated: trace replayed"),
        plt.Line2D([], [], color="black", ls=styles["fitted"], label="simulated: fitted model"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False)  # fmt: skip
    fig.tight_layout()
    _save(fig, out, "sim_vs_real")


def errors_figure(summary: pd.DataFrame, out: Path) -> None:
    """Predicted against measured: time to the target loss and local steps, per case."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.0))
    markers = {"blocking": "o", "nonblocking": "s", "dpsgd": "^"}
    colours = {"trace": "tab:blue", "fitted": "tab:orange"}
    for source in ("trace", "fitted"):
        for algorithm, marker in markers.items():
            part = summary[summary["algorithm"] == algorithm]
            if part.empty:
                continue
            axes[0].scatter(part["measured_time_to_target_s"],
                            part[f"{source}_predicted_time_to_target_s"], marker=marker,
                            facecolors="none", edgecolors=colours[source], s=36)  # fmt: skip
            axes[1].scatter(part["measured_steps"], part[f"{source}_predicted_steps"],
                            marker=marker, facecolors="none", edgecolors=colours[source],
                            s=36)  # fmt: skip
    for ax, label in ((axes[0], "time to target loss (s)"), (axes[1], "local steps, all nodes")):
        values = [np.asarray(c.get_offsets(), dtype=float).ravel() for c in ax.collections]
        finite = np.concatenate(values)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        lo, hi = finite.min() / 1.3, finite.max() * 1.3
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="prediction = measurement")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.grid(alpha=0.3, which="both")
    handles = [
        plt.Line2D([], [], ls="", marker=m, color="black", mfc="none", label=LABELS[a])
        for a, m in markers.items()
    ] + [
        plt.Line2D([], [], ls="", marker="o", color=colours["trace"], mfc="none",
                   label="simulated: trace replayed"),
        plt.Line2D([], [], ls="", marker="o", color=colours["fitted"], mfc="none",
                   label="simulated: fitted model"),
        plt.Line2D([], [], color="grey", label="prediction = measurement"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False)  # fmt: skip
    fig.tight_layout()
    _save(fig, out, "sim_vs_real_errors")


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.0%}"


def summary_markdown(summary: pd.DataFrame, command: str, seconds: float) -> str:
    lines = [
        "# sim_vs_real: measured vs predicted",
        "",
        f"`{command}` — {len(summary)} real runs of {seconds:g} s each.",
        "",
        "Loss error: mean |predicted − measured| / measured over the recording times after "
        "the start. Time to target: the first time the loss reaches 90% of the way from its "
        "first to its last measured value; error = (predicted − measured) / measured. Steps: "
        "local steps of all nodes over the run, same relative error.",
        "",
        "| case | step ms (median / mean) | exchange µs | loss error trace / fitted | "
        "time to target s: measured, trace, fitted | steps: measured, trace err, fitted err |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['case']} | {r['median_step_ms']:.3f} / {r['mean_step_ms']:.3f} | "
            f"{r['exchange_us']:.1f} | {r['trace_mean_relative_loss_error']:.1%} / "
            f"{r['fitted_mean_relative_loss_error']:.1%} | "
            f"{r['measured_time_to_target_s']:.2f}, {r['trace_predicted_time_to_target_s']:.2f} "
            f"({_pct(r['trace_time_to_target_error'])}), "
            f"{r['fitted_predicted_time_to_target_s']:.2f} "
            f"({_pct(r['fitted_time_to_target_error'])}) | "
            f"{int(r['measured_steps'])}, {_pct(r['trace_steps_error'])}, "
            f"{_pct(r['fitted_steps_error'])} |"
        )
    lines += ["", "Medians over cases, by algorithm:", ""]
    lines.append(
        "| algorithm | loss error trace | loss error fitted | abs. time-to-target error trace | "
        "abs. time-to-target error fitted | steps error trace | steps error fitted |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for algorithm, part in summary.groupby("algorithm", sort=False):
        lines.append(
            f"| {algorithm} | {part['trace_mean_relative_loss_error'].median():.1%} | "
            f"{part['fitted_mean_relative_loss_error'].median():.1%} | "
            f"{part['trace_time_to_target_error'].abs().median():.0%} | "
            f"{part['fitted_time_to_target_error'].abs().median():.0%} | "
            f"{_pct(part['trace_steps_error'].median())} | "
            f"{_pct(part['fitted_steps_error'].median())} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default="results/sim_vs_real",
        help="directory for the runs, tables and figures (default: results/sim_vs_real)",
    )
    parser.add_argument(
        "--time", type=float, default=3.0, help="wall-clock seconds of each real run (default 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 and 4 processes, H = 1 only (a smoke run: 12 cases instead of 30)",
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="redraw the figures and the summary from --out's summary.csv and curves.csv",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        summary = pd.read_csv(out / "summary.csv")
        curves_figure(summary, pd.read_csv(out / "curves.csv"), out)
        errors_figure(summary, out)
        return 0
    rows, frames = [], []
    chosen = cases(args.quick)
    began = time.perf_counter()
    for index, case in enumerate(chosen, start=1):
        row, curves = run_case(case, args.time, out / "runs")
        rows.append(row)
        frames.append(curves)
        print(
            f"[{index}/{len(chosen)}] {case.name}: loss error trace "
            f"{row['trace_mean_relative_loss_error']:.1%}, fitted "
            f"{row['fitted_mean_relative_loss_error']:.1%}; steps trace "
            f"{_pct(row['trace_steps_error'])}, fitted {_pct(row['fitted_steps_error'])}",
            flush=True,
        )
    summary = pd.DataFrame(rows)
    curves = pd.concat(frames, ignore_index=True)
    summary.to_csv(out / "summary.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)
    given = argv if argv is not None else sys.argv[1:]
    command = "python experiments/sim_vs_real.py " + " ".join(given)
    (out / "sim_vs_real_summary.md").write_text(
        summary_markdown(summary, command.strip(), args.time), encoding="utf-8"
    )
    curves_figure(summary, curves, out)
    errors_figure(summary, out)
    print(f"{len(chosen)} cases in {time.perf_counter() - began:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
