"""Run directories: ``<out>/<name>/<run-id>/`` with config.yaml, meta.json, metrics.parquet.

A run directory is written under a temporary name and renamed into place, so it is
either complete or absent. The run id is a hash of the resolved config and the package
version, so the same run always lands in the same place.
"""

from __future__ import annotations

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

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

import gossipsim

PACKAGES = ("numpy", "scipy", "simpy", "networkx", "pydantic", "pyarrow")


def run_id(resolved: dict[str, Any]) -> str:
    """Stable id of a run: hash of its resolved config plus the gossipsim version."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{gossipsim.__version__}\n{canonical}".encode()).hexdigest()
    return digest[:12]


def environment() -> dict[str, Any]:
    """Versions and revision that decide what a run computes."""
    versions = {"python": platform.python_version(), "gossipsim": gossipsim.__version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "git_revision": git_revision(), "platform": sys.platform}


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
    arrays = {}
    for column in columns:
        values = [row[column] for row in rows]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            arrays[column] = pa.array(values, type=pa.int64())
        else:
            arrays[column] = pa.array([float(v) for v in values], type=pa.float64())
    return pa.table(arrays)


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
