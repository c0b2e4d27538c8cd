"""Standard figures from result tables (never called from inside a simulation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gossipsim.results import read_run, run_directories  # noqa: E402

LABELS = {
    "time": "simulated time (s)",
    "interactions": "pairwise interactions",
    "epochs": "epochs (samples processed / training-set size)",
    "bits": "bits sent",
    "loss": "training loss of the mean model",
    "accuracy": "held-out accuracy of the mean model",
    "consensus": "consensus distance (1/n) Σ‖x_i − μ‖²",
    "local_steps": "local SGD steps (all nodes)",
    "idle_time": "idle time waiting for partners (s, all nodes)",
}
LOG_Y = {"loss", "consensus"}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _labels(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Label each run by the config values that differ between the runs plotted."""
    flats = [_flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    if not varying:
        return [
            f"{c.get('algorithm', {}).get('kind', 'run')} seed {c.get('seed')}" for c in configs
        ]
    return [", ".join(f"{k}={f.get(k)}" for k in varying) for f in flats]


def plot_runs(
    path: str | Path, x: str = "time", y: str = "loss", output: str | Path | None = None
) -> Path:
    """Plot ``y`` against ``x`` for every run under ``path``; write a PNG and return its path."""
    runs = run_directories(path)
    if not runs:
        raise FileNotFoundError(f"no run directories with metrics.parquet under {path}")
    loaded = [read_run(r) for r in runs]
    for column in (x, y):
        if column not in loaded[0][2].column_names:
            valid = ", ".join(loaded[0][2].column_names)
            raise ValueError(f"unknown column '{column}'; available: {valid}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (_, meta, table), label in zip(loaded, _labels([c for c, _, _ in loaded]), strict=True):
        xs = table.column(x).to_numpy()
        ys = table.column(y).to_numpy()
        status = "" if meta.get("status") == "complete" else f" [{meta.get('status')}]"
        ax.plot(xs, ys, label=f"{label}{status}", linewidth=1.5)
    if y in LOG_Y:
        values = [v for _, _, t in loaded for v in t.column(y).to_numpy() if v == v]
        if values and min(values) > 0:
            ax.set_yscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    name = loaded[0][0].get("name", Path(path).name)
    ax.set_title(f"{name}: {y} vs {x}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(output) if output else Path(path) / f"{y}_vs_{x}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
