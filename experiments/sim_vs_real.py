"""The simulator against real runs on this machine (experiments/sim_vs_real.md).

Each case runs the configuration for real (``gossipsim.real``: one OS process per node,
shared-memory models, real locks or barriers), then simulates it from the measured step
times — replayed as a trace, and as the distribution ``gossipsim fit`` picks — and
compares the predicted loss-against-time curve with the measured one.

    python experiments/sim_vs_real.py                  # ~2 min on 2 cores
    python experiments/sim_vs_real.py --seconds 2      # shorter runs

Writes ``<out>/sim_vs_real/<case>/`` (the real run's files), ``<out>/sim_vs_real.csv`` (one
row per case and simulated model), ``<out>/sim_vs_real_summary.md`` and
``<out>/sim_vs_real.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from gossipsim.experiment.config import validate_data  # noqa: E402
from gossipsim.real import compare, run_real  # noqa: E402

BASE: dict[str, Any] = {
    "name": "sim-vs-real",
    "seed": 3,
    "objective": {
        "kind": "logistic",
        "dataset": {"kind": "synthetic", "n_samples": 40000, "n_features": 100},
        "batch_size": 128,
    },
    "topology": {"kind": "ring", "n": 4},
    "algorithm": {"kind": "swarmsgd", "lr": 0.002},
    "record": {"every": 0.2},
}

# (case name, processes, algorithm overrides, slowed nodes)
CASES: list[tuple[str, int, dict[str, Any], dict[int, float]]] = [
    (f"swarm-n{n}-H{h}{'-slow' if slow else ''}", n,
     {"local_steps": {"kind": "fixed", "value": h}}, {0: 3.0} if slow else {})
    for n in (3, 5, 8) for h in (1, 4) for slow in (False, True)
]  # fmt: skip
CASES += [
    ("nonblocking-n4", 4, {"nonblocking": True}, {}),
    ("nonblocking-n4-slow", 4, {"nonblocking": True}, {0: 3.0}),
    ("dpsgd-n4", 4, {"kind": "dpsgd"}, {}),
    ("dpsgd-n4-slow", 4, {"kind": "dpsgd"}, {0: 3.0}),
]


def case_config(n: int, algorithm: dict[str, Any], seconds: float):
    data = {**BASE, "topology": {"kind": "ring", "n": n}, "stop": {"time": seconds}}
    data["algorithm"] = {**BASE["algorithm"], **algorithm}
    return validate_data(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results", help="output directory (default: results)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="wall-clock length of each real run"
    )
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows, curves = [], {}
    for name, n, algorithm, slow in CASES:
        if args.only and args.only not in name:
            continue
        real = run_real(case_config(n, algorithm, args.seconds), slow=slow)
        run_dir = real.write(out / "sim_vs_real" / name)
        for model in ("trace", "fitted"):
            comparison = compare(real, run_dir / "trace.csv", fitted=model == "fitted")
            rows.append({"case": name, "processes": n, "model": model, **comparison.summary()})
            curves[(name, model)] = comparison
        print(f"{name}: " + ", ".join(
            f"{r['model']} loss error {r['mean_relative_loss_error']:.1%} "
            f"steps {r['steps_error']:+.0%}" for r in rows[-2:]
        ), flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sim_vs_real.csv", index=False)
    columns = ["case", "model", "mean_relative_loss_error", "max_relative_loss_error",
               "measured_time_to_target_s", "predicted_time_to_target_s",
               "time_to_target_error", "steps_error"]  # fmt: skip
    summary = markdown(table[columns])
    (out / "sim_vs_real_summary.md").write_text(summary + "\n", encoding="utf-8")
    figure(curves, out / "sim_vs_real.png")
    print(f"wrote {out / 'sim_vs_real.csv'}, {out / 'sim_vs_real_summary.md'}, "
          f"{out / 'sim_vs_real.png'}")  # fmt: skip
    return 0


def markdown(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def figure(curves: dict[tuple[str, str], Any], path: Path) -> None:
    shown = [c for c in ("swarm-n5-H1", "swarm-n5-H1-slow", "nonblocking-n4", "dpsgd-n4")
             if (c, "trace") in curves]  # fmt: skip
    if not shown:
        return
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.2), sharey=True)
    axes = [axes] if len(shown) == 1 else list(axes)
    for ax, case in zip(axes, shown, strict=True):
        replay, fitted = curves[(case, "trace")], curves[(case, "fitted")]
        ax.plot(replay.time, replay.measured, color="black", linewidth=1.8, label="measured")
        ax.plot(replay.time, replay.predicted, "--", color="tab:blue", label="simulated (trace)")
        ax.plot(fitted.time, fitted.predicted, ":", color="tab:orange", label="simulated (fit)")
        ax.set_title(case, fontsize=10)
        ax.set_xlabel("wall-clock / simulated time (s)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("training loss of the mean model")
    axes[-1].legend(fontsize=8)
    fig.suptitle("gossipsim's prediction against real runs on this machine", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
