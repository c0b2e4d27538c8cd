"""Standard figures from result tables (never called from inside a simulation).

Everything here reads a *collected* table (see
:func:`gossipsim.experiment.results.collect`): one row per recording point of every run,
with the swept parameters as columns. Curves of runs that differ only in their seed are
drawn as their mean with a 95% bootstrap confidence band.
Figures are built with :class:`matplotlib.figure.Figure` directly, so no global pyplot state
or display backend is touched (safe in workers, notebooks and headless CI alike).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gossipsim.experiment.results import collect, parameters_of, read_collected
from gossipsim.text import count_of

LABELS = {
    "time": "simulated time (s)",
    "interactions": "pairwise interactions",
    "epochs": "epochs (samples processed / training-set size)",
    "bits": "bits sent",
    "iteration": "iterations",
    "loss": "training loss of the mean model",
    "accuracy": "held-out accuracy of the mean model",
    "consensus": "consensus distance (1/n) Σ‖x_i − μ‖²",
    "local_steps": "local SGD steps (all nodes)",
    "idle_time": "idle time waiting for partners (s, all nodes)",
    "messages": "messages sent",
    "decode_error": "relative decode error ‖ĝ − g‖ / ‖g‖",
    "decode_error_median": "median relative decode error ‖ĝ − g‖ / ‖g‖",
    "decode_error_mean": "mean relative decode error ‖ĝ − g‖ / ‖g‖",
    "iteration_time": "seconds per PS iteration (mean so far)",
    "condition_number": "worst condition number met",
}
SHORT = {"loss": "loss", "accuracy": "accuracy", "consensus": "consensus", "bits": "bits sent"}
LOG_Y = {"loss", "consensus", "decode_error", "decode_error_median", "decode_error_mean"}
X_CHOICES = ("time", "interactions", "epochs", "bits")
Y_CHOICES = ("loss", "accuracy", "consensus")
#: A y axis goes logarithmic when its positive values span at least this ratio.
LOG_SPAN = 20.0
BIT_UNITS = (("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3))


def load_table(path: str | Path) -> pd.DataFrame:
    """A collected table from a ``.parquet`` file, a sweep directory or one run directory."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet" and path.name != "metrics.parquet":
        return read_collected(path)
    return collect(path)


def _group_columns(
    frame: pd.DataFrame, x: str, y: str, hue: str | None, col: str | None
) -> tuple[str | None, str | None, list[str]]:
    """Resolve ``auto`` hue/col; return them and the parameters folded into the hue label."""
    candidates = parameters_of(frame)
    if "case" in frame.columns:
        candidates = _case_description(frame, candidates)
    varying = [
        c for c in candidates if c not in (x, y) and frame[c].astype(str).nunique(dropna=False) > 1
    ]
    for option, value in (("hue", hue), ("col", col)):
        if value not in (None, "auto") and value not in frame.columns:
            listed = ", ".join(varying) or "none"
            raise ValueError(
                f"--{option}: unknown column '{value}'; swept parameters: {listed}"
                f" (or any column of the table)"
            )
    explicit = {v for v in (hue, col) if v not in (None, "auto")}
    free = [c for c in varying if c not in explicit]
    if hue == "auto":
        hue = free.pop(0) if free else None
    if col == "auto":
        col = free.pop(0) if free else None
    extra = [c for c in free if c not in (hue, col)]
    return hue, col, extra


def _case_description(frame: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The grouping candidates of a sweep with named cases.

    Keys that a case fixes (one value per case) are described together: by the one key that
    tells the cases apart when there is exactly one (``topology.kind``, so the legend reads
    ``ring``, ``torus`` under that title), by the case names otherwise. Keys that vary
    within a case (a grid crossed with the cases) stay candidates of their own.
    """
    text = frame.astype({k: str for k in candidates})
    per_case = text.groupby("case", dropna=False)
    within = [k for k in candidates if (per_case[k].nunique() > 1).any()]
    fixed = [k for k in candidates if k not in within and text[k].nunique() > 1]
    cases = frame["case"].astype(str).nunique()
    if len(fixed) == 1 and text[fixed[0]].nunique() == cases:
        return [fixed[0], *within]
    return ["case", *within]


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _mean_band(
    curves: list[tuple[np.ndarray, np.ndarray]], resamples: int = 1000
) -> tuple[np.ndarray, ...]:
    """Mean of several (x, y) curves on a common x grid, with a 95% bootstrap band.

    The band is the 2.5-97.5 percentile range of the mean over ``resamples`` resamplings of
    the runs (seeded, so a figure is reproducible). Where curves do not share x values they
    are interpolated onto the union grid, each only inside its own x range.
    """
    xs0 = curves[0][0]
    same = all(len(c[0]) == len(xs0) and np.array_equal(c[0], xs0) for c in curves)
    if same:
        grid = xs0
        ys = np.vstack([c[1] for c in curves])
    else:
        union = np.unique(np.concatenate([c[0] for c in curves]))
        grid = union if len(union) <= 400 else np.linspace(union[0], union[-1], 300)
        ys = np.full((len(curves), len(grid)), np.nan)
        for i, (cx, cy) in enumerate(curves):
            ok = np.isfinite(cy)
            if ok.sum() == 0:
                continue
            inside = (grid >= cx[ok][0]) & (grid <= cx[ok][-1])
            ys[i, inside] = np.interp(grid[inside], cx[ok], cy[ok])
    finite = np.isfinite(ys)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(finite, ys, 0.0).sum(axis=0) / count, np.nan)
    low = high = np.full(len(grid), np.nan)
    if len(curves) > 1:
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(curves), size=(resamples, len(curves)))
        sample = ys[picks]  # (resamples, runs, grid)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(sample, axis=1)
            low, high = np.nanpercentile(means, [2.5, 97.5], axis=0)
        low = np.where(count > 1, low, np.nan)
        high = np.where(count > 1, high, np.nan)
    return grid, mean, low, high, count


def _bit_scale(frame: pd.DataFrame, x: str) -> tuple[float, str]:
    if x != "bits":
        return 1.0, LABELS.get(x, x)
    top = float(np.nanmax(frame[x].to_numpy(dtype=float))) if len(frame) else 0.0
    for unit, size in BIT_UNITS:
        if top >= 10 * size:
            return size, f"data sent ({unit}, all nodes)"
    return 1.0, "data sent (bits, all nodes)"


def plot_table(
    frame: pd.DataFrame,
    x: str = "time",
    y: str = "loss",
    hue: str | None = "auto",
    col: str | None = "auto",
    title: str | None = None,
    band: bool = True,
) -> Figure:
    """Draw ``y`` against ``x``: one line per ``hue`` value, one panel per ``col`` value.

    ``"auto"`` picks the swept parameters (first for hue, second for panels; any further
    ones are folded into the line labels so different configurations are never averaged);
    ``None`` turns the grouping off. Runs that differ only in seed give one line: their
    mean, with a 95% bootstrap confidence band when there are at least two.
    """
    for column in (x, y):
        if column not in frame.columns:
            raise ValueError(
                f"unknown column '{column}'; available: {', '.join(map(str, frame.columns))}"
            )
    data = frame[np.isfinite(pd.to_numeric(frame[x], errors="coerce"))]
    values = pd.to_numeric(data[y], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).any():
        raise ValueError(f"column '{y}' has no finite values to plot (e.g. accuracy of regression)")
    hue, col, extra = _group_columns(data, x, y, hue, col)
    scale, xlabel = _bit_scale(data, x)
    panels = [None] if col is None else list(pd.unique(data[col]))
    if col is not None:
        panels = _ordered(panels)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(1.0 + 4.6 * ncols, 0.9 + 3.6 * nrows), layout="constrained")
    share_x = col is None or _same_ranges(data, x, col)
    axes = fig.subplots(nrows, ncols, sharex=share_x, sharey=True, squeeze=False).ravel()
    label_keys = [k for k in (hue, *extra) if k is not None]
    all_keys = _label_series(data, label_keys)
    hue_values = _ordered(pd.unique(all_keys))
    numeric_hue = (
        hue is not None
        and not extra
        and pd.api.types.is_numeric_dtype(data[hue])
        and data[hue].nunique() > 2
    )
    if numeric_hue:
        order = sorted(pd.unique(data[hue]))
        cmap = _colormap("viridis")
        colors = {
            _value_text(v): cmap(0.1 + 0.8 * i / max(len(order) - 1, 1))
            for i, v in enumerate(order)
        }
    else:
        cycle = _colormap("tab10")
        colors = {v: cycle(i % 10) for i, v in enumerate(hue_values)}
    seeds_seen: set[int] = set()
    positive: list[float] = []  # the y values that size the axis
    blown_up: list[float] = []  # those of diverged runs: they may leave through the top
    for ax, panel in zip(axes, panels, strict=False):
        subset = data if col is None else data[data[col].astype(str) == str(panel)]
        keys = all_keys.loc[subset.index]
        for key in [k for k in hue_values if (keys == k).any()]:
            group = subset[keys == key]
            curves = []
            statuses = []
            for _, run in group.groupby("run_id", sort=True):
                run = run.sort_values(x, kind="stable")
                xs = run[x].to_numpy(dtype=float) / scale
                ys = pd.to_numeric(run[y], errors="coerce").to_numpy(dtype=float)
                ys = np.where(np.isfinite(ys), ys, np.nan)
                curves.append((xs, ys))
                statuses.append(str(run["status"].iloc[0]) if "status" in run else "complete")
            if not curves:
                continue
            seeds_seen.add(len(curves))
            grid, mean, low, high, _ = _mean_band(curves)
            bad = [s for s in statuses if s != "complete"]
            scale_from = positive if "diverged" not in bad else blown_up
            scale_from.extend(v for v in (*mean, *low, *high) if np.isfinite(v) and v > 0)
            label = _legend_label(key, label_keys, hue, extra)
            if bad:
                label += f" ({len(bad)} {'/'.join(sorted(set(bad)))})"
            color = colors.get(key, None)
            label = label or _runs(len(curves))
            ax.plot(grid, mean, label=label, color=color, linewidth=1.6)
            if band and len(curves) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        if col is not None:
            heading = _value_text(panel) if col == "case" else f"{col} = {_value_text(panel)}"
            ax.set_title(heading, fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    sized_by_healthy = bool(positive) and bool(blown_up)
    if not positive:  # every line diverged: size the axis to them after all
        positive = blown_up
    log_axis = False
    if y in LOG_Y and positive:
        top = max(positive)
        meaningful = [v for v in positive if v > top * 1e-12]  # below: rounding noise of 0
        log_axis = top / min(meaningful) >= LOG_SPAN
    if sized_by_healthy:
        # Diverged lines leave through the top of an axis sized to the others; cut them
        # just above it (before any scale is set, so no transform meets values near the
        # float limit).
        ceiling = max(positive) * (100.0 if log_axis else 2.0)
        for ax in axes:
            for line in ax.lines:
                ys = np.asarray(line.get_ydata(), dtype=float)
                line.set_ydata(np.where(ys > ceiling, ceiling, ys))
            for band_patch in ax.collections:  # confidence bands
                for path in band_patch.get_paths():
                    path.vertices[:, 1] = np.minimum(path.vertices[:, 1], ceiling)
            ax.relim()  # the data limits still held the values just cut
    if log_axis:
        axes[0].set_yscale("log")  # shared y: every panel follows
        axes[0].set_ylim(min(meaningful) / 1.5, min(top * 1.5, np.finfo(float).max))
    elif sized_by_healthy:
        axes[0].set_ylim(top=max(positive) * 1.1)
    for ax in axes[(nrows - 1) * ncols :]:
        ax.set_xlabel(xlabel)
    for ax in axes[::ncols]:
        ax.set_ylabel(LABELS.get(y, y))
    _legend(fig, list(axes[: len(panels)]), label_keys)
    if title is None:
        name = str(data["name"].iloc[0]) if "name" in data and len(data) else "runs"
        title = f"{name}: {SHORT.get(y, y)} vs {x}"
        most = max(seeds_seen) if seeds_seen else 1
        if most > 1:
            upto = "up to " if min(seeds_seen) < most else ""
            title += f" — mean and 95% CI over {upto}{most} seeds"
    fig.suptitle(title, fontsize=11)
    return fig


#: At most this many legend entries go inside the first panel; more go beside the figure.
LEGEND_INSIDE = 4


def _runs(count: int) -> str:
    return count_of(count, "run")


def _same_ranges(data: pd.DataFrame, x: str, col: str) -> bool:
    """Whether every panel's x values span about the same range (then panels share x)."""
    values = pd.to_numeric(data[x], errors="coerce")
    spans = values.groupby(data[col].astype(str)).agg(["min", "max"])
    width = float(spans["max"].max() - spans["min"].min()) or 1.0
    return bool(
        (spans["min"].max() - spans["min"].min()) <= 0.05 * width
        and (spans["max"].max() - spans["max"].min()) <= 0.05 * width
    )


def _legend(fig: Figure, axes: Sequence[Any], label_keys: Sequence[str]) -> None:
    """One legend for the whole figure: every line of every panel, each label once.

    Inside the first panel when it holds all the entries and there are a few; beside the
    panels otherwise (a line drawn in a later panel only still gets its entry).
    """
    entries: dict[str, Any] = {}
    first: set[str] = set()
    for index, ax in enumerate(axes):
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            entries.setdefault(label, handle)
            if index == 0:
                first.add(label)
    if not entries or (len(entries) == 1 and not label_keys):
        return  # one unlabelled line: the title says what it is
    entries = {label: entries[label] for label in _ordered(list(entries))}
    # The case names describe themselves; a swept key titles the legend.
    title = label_keys[0] if len(label_keys) == 1 and label_keys[0] != "case" else None
    options = {"fontsize": 8, "title": title, "title_fontsize": 8}
    if len(entries) <= LEGEND_INSIDE and set(entries) == first:
        axes[0].legend(list(entries.values()), list(entries), **options)
    else:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", **options)


def _label_series(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """The line label of every row: its values of ``keys`` joined by commas."""
    if not keys:
        return pd.Series("", index=frame.index)
    columns = [frame[k].map(_value_text) for k in keys]
    joined = columns[0]
    for column in columns[1:]:
        joined = joined + ", " + column
    return joined


def _colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Numeric values in numeric order; anything else in the order of the sweep."""
    values = list(values)
    keys = [_sort_key(v) for v in values]
    if all(k[0] == 0 for k in keys):
        return [v for _, v in sorted(zip(keys, values, strict=True), key=lambda kv: kv[0])]
    return values


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order, then text, so 0.5 < 2 < 10 and 'a' < 'b'."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return (0, float(value), "")
    text = str(value)
    try:
        return (0, float(text.split(",")[0]), text)
    except ValueError:
        return (1, 0.0, text)


def _legend_label(
    key: str, label_keys: Sequence[str], hue: str | None, extra: Sequence[str]
) -> str:
    if not label_keys:
        return ""
    if len(label_keys) == 1:
        return key
    values = key.split(", ")
    if len(values) != len(label_keys):
        return key
    return ", ".join(
        v if k == "case" else f"{_short(k)}={v}" for k, v in zip(label_keys, values, strict=True)
    )


def _short(key: str) -> str:
    """A dotted key shortened for a legend: its last two parts when it is long."""
    parts = key.split(".")
    return key if len(key) <= 16 or len(parts) <= 2 else ".".join(parts[-2:])


def save_figure(
    fig: Figure, target: str | Path, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` as ``target`` with each suffix in ``formats``; return the paths."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = target.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=150 if fmt == "png" else None)
        paths.append(path)
    return paths


def figure_directory(path: str | Path) -> Path:
    """Where figures of ``path`` go by default: the sweep (or run) directory itself."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return path.with_suffix("")
    return path


def plot_results(
    path: str | Path,
    x: str = "time",
    y: str = "loss",
    hue: str | None = "auto",
    col: str | None = "auto",
    output: str | Path | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Plot a sweep directory or collected table; write PNG and PDF; return the paths.

    The default output is ``<sweep dir>/<y>_vs_<x>.png`` (and ``.pdf``).
    """
    from gossipsim.experiment.results import check_output_file

    if output is not None:
        target = Path(output)
        suffix = target.suffix.lstrip(".")
        if suffix in ("png", "pdf", "svg"):
            formats = [suffix, *(f for f in formats if f != suffix)]
    else:
        target = figure_directory(path) / f"{y}_vs_{x}.png"
    frame = load_table(path)
    check_output_file(target, "--output" if output is not None else "plot")
    fig = plot_table(frame, x=x, y=y, hue=hue, col=col)
    return save_figure(fig, target, formats)


def plot_runs(
    path: str | Path, x: str = "time", y: str = "loss", output: str | Path | None = None
) -> Path:
    """Plot ``y`` against ``x`` for every run under ``path``; return the PNG written."""
    return plot_results(path, x=x, y=y, output=output)[0]


def standard_figures(
    frame: pd.DataFrame, directory: str | Path, formats: Sequence[str] = ("png", "pdf")
) -> list[tuple[str, Path]]:
    """The paper-style figures of a collected table: (caption, PNG path) for each written.

    Loss against time, interactions and bits; consensus against time; held-out accuracy
    against time when the objective has one.
    """
    wanted = [
        ("loss", "time"),
        ("loss", "interactions"),
        ("loss", "bits"),
        ("consensus", "time"),
        ("accuracy", "time"),
    ]
    written = []
    for y, x in wanted:
        if x not in frame.columns or y not in frame.columns:
            continue
        if not np.isfinite(pd.to_numeric(frame[y], errors="coerce")).any():
            continue
        fig = plot_table(frame, x=x, y=y)
        paths = save_figure(fig, Path(directory) / f"{y}_vs_{x}.png", formats)
        written.append((f"{SHORT.get(y, y)} vs {x}", paths[0]))
    return written
