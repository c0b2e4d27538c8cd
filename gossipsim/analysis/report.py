"""``gossipsim report``: a short Markdown summary of a sweep, beside its figures.

Per configuration (runs that differ only in their seed): how many runs and how they ended,
the final loss and accuracy (mean ± standard deviation across seeds), and the simulated
time, interactions and bits needed to first reach a target loss. Gradient-coding runs
show the seconds per iteration and the median relative decode error instead of
interactions. The target is
``stop.target_loss`` when the runs set one, else the highest final mean loss among the
configurations, so that every configuration reaches it and the table says who got there
first. Failed and diverged runs are listed with their errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gossipsim.analysis.plots import standard_figures
from gossipsim.experiment.results import (
    UNREADABLE,
    check_output_file,
    collect,
    parameters_of,
    read_run,
    run_directories,
    runs_table,
)
from gossipsim.text import count_of


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def _mean_sd(values: pd.Series) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    values = values[np.isfinite(values)]
    if values.empty:
        return "—"
    if len(values) == 1:
        return _fmt(float(values.iloc[0]))
    return f"{values.mean():.4g} ± {values.std(ddof=1):.2g}"


def _bits(value: float) -> str:
    for unit, size in (("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} bit"


def _target_from_configs(path: Path) -> float | None:
    targets = set()
    for run in run_directories(path):
        try:
            config, _, _ = read_run(run)
        except UNREADABLE:
            continue  # collect() warns about it
        target = (config.get("stop") or {}).get("target_loss")
        if target is not None:
            targets.add(float(target))
    return max(targets) if targets else None


def reach(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per run: the first recorded time, interactions and bits with ``loss <= target``."""
    rows = []
    for run_id, run in frame.groupby("run_id", sort=False):
        run = run.sort_values("time", kind="stable")
        hit = run[run["loss"] <= target]
        first = hit.iloc[0] if not hit.empty else None
        rows.append(
            {
                "run_id": run_id,
                "time_to_target": None if first is None else float(first["time"]),
                "interactions_to_target": None if first is None else float(first["interactions"]),
                "bits_to_target": None
                if first is None or "bits" not in run
                else float(first["bits"]),
            }
        )
    return pd.DataFrame(rows)


def _gradient_coding(group: pd.DataFrame) -> bool:
    """Whether the runs are gradient-coding runs (they record seconds per iteration)."""
    if "final_iteration_time" not in group:
        return False
    return bool(pd.to_numeric(group["final_iteration_time"], errors="coerce").notna().any())


def summarize(path: str | Path, target: float | None = None) -> tuple[pd.DataFrame, float | None]:
    """The per-configuration summary table of the sweep at ``path`` and the target used."""
    path = Path(path)
    frame = collect(path)
    runs = runs_table(path)
    keys = (["case"] if "case" in runs.columns else []) + parameters_of(runs)
    if target is None:
        target = _target_from_configs(path)
    finals = runs.copy()
    if target is None and "final_loss" in finals:
        losses = pd.to_numeric(finals["final_loss"], errors="coerce")
        finite = finals.assign(final_loss=losses.where(np.isfinite(losses)))
        if keys:
            values = finite.groupby(keys, dropna=False)["final_loss"].mean().to_numpy(float)
        else:
            values = np.array([finite["final_loss"].mean()], dtype=float)
        values = values[np.isfinite(values)]
        target = float(values.max()) if len(values) else None
    if target is not None and "loss" in frame:
        finals = finals.merge(reach(frame, target), on="run_id", how="left")
    groups = finals.groupby(keys, dropna=False, sort=False) if keys else [((), finals)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        statuses = group["status"].value_counts()
        row["runs"] = len(group)
        row["status"] = ", ".join(f"{n} {s}" for s, n in statuses.items())
        row["final loss (training objective)"] = _mean_sd(
            group.get("final_loss", pd.Series(dtype=float))
        )
        row["final test accuracy (fraction)"] = _mean_sd(
            group.get("final_accuracy", pd.Series(dtype=float))
        )
        coded = _gradient_coding(group)
        if coded:  # a parameter-server run: seconds per iteration and the decode's error
            row["iteration time (simulated s)"] = _mean_sd(group["final_iteration_time"])
            row["decode error (median, ‖ĝ − g‖/‖g‖)"] = _mean_sd(group["final_decode_error_median"])
        gaps = pd.to_numeric(group.get("spectral_gap", pd.Series(dtype=float)), errors="coerce")
        if gaps.notna().any():
            row["λ₂ (mean over runs)"] = _fmt(float(gaps.mean()))
        walls = pd.to_numeric(group.get("wall_time", pd.Series(dtype=float)), errors="coerce")
        if walls.notna().any():
            row["wall time (real s, mean)"] = _fmt(float(walls.mean()))
        if target is not None and "time_to_target" in group:
            reached = group["time_to_target"].notna()
            suffix = "" if reached.all() else f" ({int(reached.sum())}/{len(group)} reached)"
            if reached.any():
                hit = group[reached]
                row["time to target (simulated s)"] = _fmt(hit["time_to_target"].mean()) + suffix
                if not coded:
                    row["interactions to target"] = _fmt(hit["interactions_to_target"].mean())
                row["bits to target"] = _bits(float(hit["bits_to_target"].mean()))
            else:
                row["time to target (simulated s)"] = f"not reached{suffix}"
                if not coded:
                    row["interactions to target"] = "—"
                row["bits to target"] = "—"
        rows.append(row)
    return pd.DataFrame(rows), target


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    lines = [header, rule]
    for _, row in table.iterrows():
        cells = [_fmt(v).replace("|", "\\|") for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    path: str | Path,
    target: float | None = None,
    output: str | Path | None = None,
    figures: bool = True,
) -> Path:
    """Write ``<sweep>/report.md`` (and the standard figures beside it); return its path."""
    path = Path(path)
    output = Path(output) if output else path / "report.md"
    frame = collect(path)
    check_output_file(output, "--output")
    runs = runs_table(path)
    table, target = summarize(path, target)
    name = str(frame["name"].iloc[0]) if len(frame) else path.name
    keys = parameters_of(runs)
    seeds = runs.groupby(keys, dropna=False).size().max() if keys else len(runs)
    statuses = runs["status"].value_counts()
    lines = [
        f"# Sweep `{name}`",
        "",
        f"{count_of(len(runs), 'run')} ({', '.join(f'{n} {s}' for s, n in statuses.items())}); "
        f"swept: {', '.join(f'`{k}`' for k in keys) or 'nothing'}; "
        f"up to {count_of(int(seeds), 'seed')} per configuration.",
        "",
    ]
    if target is not None:
        lines += [
            f"Target loss: **{target:.4g}** (time, interactions and bits at the first "
            "recording point with loss ≤ target, averaged over the runs that reached it).",
            "",
        ]
    lines += [_markdown_table(table), ""]
    bad = runs[runs["status"] != "complete"]
    if not bad.empty:
        lines += ["## Runs that did not complete", ""]
        for _, run in bad.iterrows():
            combo = ", ".join(f"{k}={_fmt(run[k])}" for k in keys)
            error = run.get("error") or ""
            lines.append(
                f"- `{run['run_id']}` ({combo or 'base'}): {run['status']} {error}".rstrip()
            )
        lines.append("")
    if figures and len(frame):
        written = standard_figures(frame, output.parent)
        if written:
            lines += ["## Figures", ""]
            for caption, figure in written:
                relative = figure.relative_to(output.parent)
                lines.append(f"![{caption}]({relative.as_posix()})")
            lines.append("")
    lines.append(
        f"Load every metrics row: `gossipsim collect {path}` then `pandas.read_parquet(...)`."
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n")
    return output
