"""Run directories: ``<out>/<name>/<run-id>/`` with config.yaml, meta.json, metrics.parquet.

A run directory is written under a temporary name and renamed into place, so it is
either complete or absent. The run id is a hash of the resolved config and the package
version, so the same run always lands in the same place. ``meta.json`` also records a
fingerprint of the package's source (``code``), so a sweep can tell runs computed by other
code from runs it would compute itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

import gossipsim

PACKAGES = ("numpy", "scipy", "simpy", "networkx", "pydantic", "pyarrow")


class OutputError(ValueError):
    """An output location that cannot be written (the message names the path)."""


def _first_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _directory_problem(path: Path) -> str | None:
    """Why results cannot be written in directory ``path`` (created if missing), or None."""
    existing = _first_existing(path)
    if not existing.is_dir():
        return "not a directory" if existing == path else f"{existing} is a file, not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gossipsim-write-test-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    return None


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Make sure results can be written under ``path`` (created if missing), before any work.

    Raises :class:`OutputError` naming the path when it or an ancestor is a file, the
    directory is read-only, or the file system refuses a write.
    """
    path = Path(path)
    problem = _directory_problem(path)
    if problem is not None:
        raise OutputError(f"{option} {path}: {problem}")
    return path


def check_output_file(path: str | Path, option: str = "--output") -> Path:
    """Make sure the file ``path`` can be written (its directory created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a directory, expected a file name")
    problem = _directory_problem(path.parent)
    if problem is None and path.exists() and not os.access(path, os.W_OK):
        problem = "file is not writable"
    if problem is not None:
        raise OutputError(f"{option} {path}: {problem}")
    return path


# Keys of a resolved config whose text names a file the run reads: an edge list, a LIBSVM
# data set, an assignment matrix or a compute trace (``path``), a links file (``links``).
INPUT_KEYS = frozenset({"path", "links"})


def input_files(resolved: Any) -> list[str]:
    """The files a resolved config reads, in a fixed order (sorted, each once)."""
    found: set[str] = set()
    stack = [resolved]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in INPUT_KEYS and isinstance(value, str):
                    found.add(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


@functools.lru_cache(maxsize=256)
def _contents_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str) -> str:
    """SHA-256 of a file's contents ("missing" if it cannot be read). Files over 1 MiB
    (data sets) are hashed once per (size, modification time); smaller ones every time,
    as two quick edits can share a modification time."""
    try:
        stat = os.stat(path)
        if stat.st_size <= 1 << 20:
            return _contents_digest.__wrapped__(path, stat.st_size, stat.st_mtime_ns)
        return _contents_digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return "missing"


def run_id(resolved: dict[str, Any]) -> str:
    """Stable id of a run: hash of its resolved config, the gossipsim version and the
    contents of the files it reads (so editing a trace or an edge list is another run,
    never the old run's result)."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    text = f"{gossipsim.__version__}\n{canonical}"
    inputs = input_files(resolved)
    if inputs:  # configs that read no file keep the ids they always had
        text += "".join(f"\n{path}={file_digest(path)}" for path in inputs)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def code_fingerprint() -> str:
    """Hash of the gossipsim package's Python sources (paths and contents).

    Unlike the version, it changes with every edit of the code, committed or not.
    """
    root = Path(gossipsim.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def environment() -> dict[str, Any]:
    """Versions, revision and source fingerprint that decide what a run computes."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "gossipsim": gossipsim.__version__,
    }
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "git_revision": git_revision(),
        "code": code_fingerprint(),
        "platform": sys.platform,
    }


def git_revision() -> str | None:
    """The git commit of the gossipsim source tree, if it is a checkout."""
    root = Path(gossipsim.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def metrics_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pa.Table:
    """Metric rows as an Arrow table (integers stay int64, the rest float64)."""
    arrays = []
    for column in columns:
        values = [row[column] for row in rows]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            arrays.append(_arrow_column(np.array(values, dtype=np.int64), pa.int64()))
        else:
            arrays.append(_arrow_column(np.array(values, dtype=np.float64), pa.float64()))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _arrow_column(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    """An Arrow column over ``values``' memory (no nulls; NaN stays a float value).

    ``pa.array`` would first check whether its input is a pandas object, importing pandas
    (a tenth of a second of every run's start-up) for a table that never needs it.
    """
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def write_run(
    out: str | Path,
    name: str,
    identifier: str,
    resolved: dict[str, Any],
    meta: dict[str, Any],
    table: pa.Table,
) -> Path:
    """Write a run directory atomically and return its path (replacing an older copy)."""
    parent = Path(out) / name
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / identifier
    staging = parent / f".tmp-{identifier}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        pq.write_table(table, staging / "metrics.parquet")
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        for item in staging.iterdir():
            _fsync(item)
        if final.exists():
            retired = parent / f".old-{identifier}-{uuid.uuid4().hex[:8]}"
            os.rename(final, retired)
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def run_directories(path: str | Path) -> list[Path]:
    """The complete run directories at ``path`` (a run directory or a directory of runs)."""
    path = Path(path)
    if (path / "metrics.parquet").is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(
        p
        for p in path.iterdir()
        if not p.name.startswith(".") and (p / "metrics.parquet").is_file()
    )


def read_run(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], pa.Table]:
    """(resolved config, meta, metrics table) of one run directory."""
    path = Path(path)
    config = yaml.safe_load((path / "config.yaml").read_text())
    meta = json.loads((path / "meta.json").read_text())
    return config, meta, pq.read_table(path / "metrics.parquet")


#: What reading a damaged run directory raises (missing, truncated or corrupt files).
UNREADABLE: tuple[type[Exception], ...] = (OSError, ValueError, yaml.YAMLError, pa.ArrowException)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_WARNED: set[str] = set()


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (skipped inputs; the command goes on), once each."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr)


def run_problem(path: str | Path) -> str | None:
    """Why the run directory ``path`` is damaged (a file missing or unreadable), or None."""
    path = Path(path)
    try:
        config, meta, table = read_run(path)
    except UNREADABLE as exc:
        return _reason(exc)
    if not isinstance(config, dict) or not isinstance(meta, dict):
        return "config.yaml or meta.json is not a mapping"
    return None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of one run directory."""
    return json.loads((Path(path) / "meta.json").read_text())


# --------------------------------------------------------------------------------------------
# tidy tables across runs (``gossipsim collect``)

#: Columns that describe a run (not a metric) in collected tables, in order.
ID_COLUMNS = ("name", "case", "seed", "replicate", "run_id", "status")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping with dotted keys (``{"a": {"b": 1}}`` → ``{"a.b": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _compact(value: Any) -> Any:
    """Sections and lists as flow-style text; scalars unchanged."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(_compact(v)) for v in value) + "]"
    return value


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return _compact(node)


def _load_runs(path: str | Path) -> list[tuple[Path, dict[str, Any], dict[str, Any], pa.Table]]:
    runs = run_directories(path)
    if not runs:
        raise FileNotFoundError(f"no run directories with metrics.parquet under {path}")
    loaded = []
    for run in runs:
        try:
            loaded.append((run, *read_run(run)))
        except UNREADABLE as exc:
            warn(f"skipping {run}: unreadable run directory ({_reason(exc)})")
    if not loaded:
        raise FileNotFoundError(f"no readable run directories under {path}")

    def order(item: tuple[Path, dict[str, Any], dict[str, Any], pa.Table]) -> tuple:
        sweep = item[2].get("sweep") or {}
        return (sweep.get("index", 1 << 62), item[0].name)

    return sorted(loaded, key=order)


def _parameters(loaded: Sequence[tuple[Path, dict, dict, pa.Table]]) -> list[str]:
    """Swept keys recorded by the sweep (in order), else the config keys that vary."""
    keys: list[str] = []
    for _, _, meta, _ in loaded:
        sweep = meta.get("sweep") or {}
        for key in sweep.get("keys") or sweep.get("params") or {}:
            if key not in keys and key != "seed":
                keys.append(key)
    if keys or len(loaded) < 2:
        return _expand_sections(keys, [config for _, config, _, _ in loaded])
    flats = [flatten(config) for _, config, _, _ in loaded]
    every = sorted({k for f in flats for k in f})
    return [
        k for k in every if k not in ("seed", "name") and len({repr(f.get(k)) for f in flats}) > 1
    ]


def _expand_sections(keys: Sequence[str], configs: Sequence[dict[str, Any]]) -> list[str]:
    """A swept section (``algorithm: {...}`` in a case) becomes the keys in it that differ.

    So tables and legends get one column per value that changes (``algorithm.lr``), not
    the whole section on every row. A section in which nothing differs is kept as is.
    """
    expanded: list[str] = []
    for key in keys:
        values = [_raw(config, key) for config in configs]
        if not any(isinstance(v, dict) for v in values):
            expanded.append(key)
            continue
        flats = [flatten(v, f"{key}.") if isinstance(v, dict) else {key: v} for v in values]
        leaves = list(dict.fromkeys(k for flat in flats for k in flat))
        varying = [k for k in leaves if len({repr(flat.get(k)) for flat in flats}) > 1]
        for leaf in varying or [key]:
            if leaf not in expanded:
                expanded.append(leaf)
    return expanded


def _raw(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _run_columns(
    config: dict[str, Any], meta: dict[str, Any], keys: Sequence[str], run_dir: Path
) -> dict[str, Any]:
    sweep = meta.get("sweep") or {}
    columns: dict[str, Any] = {"name": config.get("name", meta.get("name"))}
    columns["case"] = sweep.get("case")
    for key in keys:
        columns[key] = _lookup(config, key)
    columns["seed"] = config.get("seed", meta.get("seed"))
    columns["replicate"] = sweep.get("replicate")
    columns["run_id"] = meta.get("run_id", run_dir.name)
    columns["status"] = meta.get("status")
    return columns


def _tidy(frame: Any, keys: Sequence[str]) -> Any:
    """Drop all-empty case/replicate columns; make every column one Parquet type."""
    import pandas as pd

    for column in ("case", "replicate"):
        if column in frame and frame[column].isna().all():
            frame = frame.drop(columns=column)
    if "replicate" in frame:
        frame["replicate"] = frame["replicate"].astype("Int64")
    if "seed" in frame and frame["seed"].dtype == object:
        frame["seed"] = pd.array(frame["seed"].tolist(), dtype="UInt64")
    for key in keys:
        values = [v for v in frame[key].tolist() if v is not None and v == v]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        booleans = all(isinstance(v, bool) for v in values)
        strings = all(isinstance(v, str) for v in values)
        if not (numeric or booleans or strings):
            frame[key] = [None if v is None else str(v) for v in frame[key].tolist()]
    return frame


def collect(path: str | Path) -> Any:
    """One tidy pandas DataFrame of every metrics row under ``path`` (a sweep directory).

    Columns: ``name``, ``case`` (named sweep cases only), one column per swept parameter
    (dotted names such as ``topology.kind``), ``seed``, ``replicate`` (``seeds:`` sweeps),
    ``run_id``, ``status``, then the metric columns of ``metrics.parquet``.
    """
    import pandas as pd

    loaded = _load_runs(path)
    keys = _parameters(loaded)
    frames = []
    seeds: list[Any] = []  # 64-bit seeds: kept as Python ints (a concat would make them float)
    for run_dir, config, meta, table in loaded:
        metrics = table.to_pandas()
        columns = _run_columns(config, meta, keys, run_dir)
        seeds.extend([columns["seed"]] * len(metrics))
        columns["seed"] = 0
        described = pd.DataFrame({k: [v] * len(metrics) for k, v in columns.items()})
        described.index = metrics.index
        frames.append(pd.concat([described, metrics], axis=1))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame["seed"] = pd.array(seeds, dtype="UInt64")
    frame = _tidy(frame, keys)
    frame.attrs["parameters"] = list(keys)
    return frame


def parameters_of(frame: Any) -> list[str]:
    """The swept-parameter columns of a collected table (works after a Parquet round trip)."""
    stored = frame.attrs.get("parameters")
    if stored is not None:
        return [k for k in stored if k in frame.columns]
    metrics = set(frame.columns) - set(ID_COLUMNS)
    return [c for c in frame.columns if c in metrics and "." in c]


def write_collected(frame: Any, target: str | Path) -> Path:
    """Write a collected table as Parquet (atomically), keeping its parameter list."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {b"gossipsim.parameters": json.dumps(parameters_of(frame)).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, staging)
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return target


def read_collected(path: str | Path) -> Any:
    """Load a table written by :func:`write_collected` (or ``gossipsim collect``)."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    stored = (table.schema.metadata or {}).get(b"gossipsim.parameters")
    if stored is not None:
        frame.attrs["parameters"] = json.loads(stored)
    return frame


def default_collect_path(path: str | Path) -> Path:
    """``results/<sweep>`` → ``results/<sweep>.parquet``."""
    path = Path(path)
    return path.parent / f"{path.resolve().name}.parquet"


def runs_table(path: str | Path) -> Any:
    """One row per run under ``path``: identity, swept values, status, error, final metrics."""
    import pandas as pd

    loaded = _load_runs(path)
    keys = _parameters(loaded)
    rows = []
    for run_dir, config, meta, table in loaded:
        row = _run_columns(config, meta, keys, run_dir)
        row["error"] = meta.get("error")
        row["wall_time"] = meta.get("wall_time")
        row["spectral_gap"] = meta.get("spectral_gap")
        row["rows"] = table.num_rows
        if table.num_rows:
            last = {c: table.column(c)[-1].as_py() for c in table.column_names}
            row.update({f"final_{k}": v for k, v in last.items()})
        rows.append(row)
    frame = _tidy(pd.DataFrame(rows), keys)
    frame.attrs["parameters"] = list(keys)
    return frame


def _ls_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ls_table(path: Path) -> list[str]:
    frame = runs_table(path)
    keys = parameters_of(frame)
    columns = ["run_id", "status", *keys]
    if "replicate" in frame:
        columns.append("replicate")
    columns += [c for c in ("seed", "final_time", "final_loss", "wall_time") if c in frame]
    headers = {"final_time": "sim_time_s", "final_loss": "final_loss", "wall_time": "wall_s"}
    rows = [[headers.get(c, c) for c in columns]]
    rows += [[_ls_cell(v) for v in record] for record in frame[columns].itertuples(index=False)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts = frame["status"].value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    noun = "run" if len(frame) == 1 else "runs"
    return [f"{path}: {len(frame)} {noun} ({summary})", *lines]


def ls_lines(path: str | Path) -> list[str]:
    """``gossipsim ls``: the runs of a sweep directory, or of every sweep under ``results/``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such results directory")
    if run_directories(path):
        return _ls_table(path)
    sweeps = sorted(p for p in path.iterdir() if p.is_dir() and run_directories(p))
    if not sweeps:
        raise FileNotFoundError(f"no run directories with metrics.parquet under {path}")
    lines: list[str] = []
    for sweep in sweeps:
        lines += [*([""] if lines else []), *_ls_table(sweep)]
    return lines
