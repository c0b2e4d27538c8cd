"""Measured step times: reading a compute trace (CSV or Parquet).

A trace has one row per measured local step (or chunk) with the columns ``node`` (an
integer id, ``>= 0``) and ``duration`` (seconds, finite and ``> 0``), optionally ``time``
(when the step started, seconds). Column order is free; other columns are ignored. CSV
files need a header line; blank lines and lines starting with ``#`` are skipped. Errors
name the file and, for CSV, the line.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Trace", "TraceError", "read_trace"]

REQUIRED = ("node", "duration")


class TraceError(ValueError):
    """A trace file that cannot be read or holds an invalid value."""


@dataclass(frozen=True)
class Trace:
    """The rows of a trace, in file order."""

    path: str
    node: np.ndarray  # int64
    duration: np.ndarray  # float64, > 0
    time: np.ndarray | None  # float64, or None when the file has no ``time`` column

    @property
    def nodes(self) -> np.ndarray:
        """The node ids that have at least one measurement, sorted."""
        return np.unique(self.node)

    def durations_of(self, node: int) -> np.ndarray:
        """One node's durations, in the order they were measured (by ``time`` if given)."""
        rows = np.flatnonzero(self.node == node)
        if self.time is not None:
            rows = rows[np.argsort(self.time[rows], kind="stable")]
        return self.duration[rows]


def read_trace(path: str | Path) -> Trace:
    """Read and check a trace file (``.csv`` or ``.parquet``); raise :class:`TraceError`."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: trace file not found")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, expected a CSV or Parquet trace file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    return _read_csv(path)


def _read_csv(path: Path) -> Trace:
    nodes: list[int] = []
    durations: list[float] = []
    times: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = (
                (number, line)
                for number, line in enumerate(handle, start=1)
                if line.strip() and not line.lstrip().startswith("#")
            )
            header_line = next(lines, None)
            if header_line is None:
                raise TraceError(f"{path}: empty trace (expected a header: node,duration[,time])")
            header_number, header_text = header_line
            header = [name.strip() for name in next(csv.reader([header_text]))]
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise TraceError(
                    f"{path}:{header_number}: missing column(s) {', '.join(missing)}; "
                    f"the header is {','.join(header)} (expected node,duration[,time])"
                )
            where = {name: header.index(name) for name in (*REQUIRED, "time") if name in header}
            has_time = "time" in where
            for number, text in lines:
                fields = next(csv.reader([text]))
                if len(fields) != len(header):
                    raise TraceError(
                        f"{path}:{number}: {len(fields)} fields, the header has {len(header)}"
                    )
                nodes.append(_node(path, number, fields[where["node"]]))
                durations.append(_duration(path, number, fields[where["duration"]]))
                if has_time:
                    times.append(_number(path, number, "time", fields[where["time"]]))
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text CSV file (for Parquet use a .parquet name)") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not nodes:
        raise TraceError(f"{path}: no measurements after the header")
    return Trace(
        str(path),
        np.array(nodes, dtype=np.int64),
        np.array(durations, dtype=np.float64),
        np.array(times, dtype=np.float64) if has_time else None,
    )


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: {column}: not a number: {text.strip()!r}") from None
    if not math.isfinite(value):
        raise TraceError(f"{path}:{line}: {column}: must be finite, got {text.strip()}")
    return value


def _node(path: Path, line: int, text: str) -> int:
    value = _number(path, line, "node", text)
    if value != int(value) or value < 0:
        raise TraceError(f"{path}:{line}: node: must be an integer id >= 0, got {text.strip()}")
    return int(value)


def _duration(path: Path, line: int, text: str) -> float:
    value = _number(path, line, "duration", text)
    if value <= 0:
        raise TraceError(f"{path}:{line}: duration: must be > 0 seconds, got {text.strip()}")
    return value


def _read_parquet(path: Path) -> Trace:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise TraceError(f"{path}: not a readable Parquet file: {exc}") from None
    missing = [name for name in REQUIRED if name not in table.column_names]
    if missing:
        raise TraceError(
            f"{path}: missing column(s) {', '.join(missing)}; columns are "
            f"{', '.join(table.column_names)} (expected node, duration[, time])"
        )
    if table.num_rows == 0:
        raise TraceError(f"{path}: no measurements")

    def column(name: str) -> np.ndarray:
        data = table.column(name)
        if data.null_count:
            row = int(np.flatnonzero(np.asarray(data.is_null()))[0])
            raise TraceError(f"{path}: row {row}: {name}: missing value")
        try:
            return np.asarray(data.to_numpy(), dtype=np.float64)
        except (TypeError, ValueError):
            raise TraceError(f"{path}: {name}: not a numeric column ({data.type})") from None

    node = column("node")
    duration = column("duration")
    time = column("time") if "time" in table.column_names else None
    checks = [
        (
            "node",
            node,
            (node < 0) | (node != np.floor(node)) | ~np.isfinite(node),
            "an integer id >= 0",
        ),
        ("duration", duration, ~(np.isfinite(duration) & (duration > 0)), "> 0 seconds (finite)"),
    ]
    if time is not None:
        checks.append(("time", time, ~np.isfinite(time), "finite"))
    for name, values, bad, expected in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise TraceError(f"{path}: row {row}: {name}: must be {expected}, got {values[row]}")
    return Trace(str(path), node.astype(np.int64), duration, time)
