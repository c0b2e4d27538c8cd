"""Run directories and collected tables: atomic writes, tidy columns, one-line pandas loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gossipsim.cli import main
from gossipsim.experiment.config import validate_data
from gossipsim.experiment.results import (
    collect,
    default_collect_path,
    metrics_table,
    parameters_of,
    read_collected,
    read_run,
    run_directories,
    run_id,
    runs_table,
    write_collected,
    write_run,
)


def fake_run(
    out: Path,
    *,
    kind: str = "ring",
    sigma: float = 0.5,
    seed: int = 1,
    replicate: int | None = 0,
    status: str = "complete",
    rows: int = 4,
    swept: bool = True,
    case: str | None = None,
) -> Path:
    """A run directory as a sweep writes it, with a made-up loss curve."""
    config = {
        "name": "fake",
        "seed": seed,
        "topology": {"kind": kind, "n": 8},
        "compute": {"kind": "lognormal", "mean": 1.0, "sigma": sigma},
        "stop": {"time": float(rows - 1)},
    }
    identifier = run_id(config)
    times = np.arange(rows, dtype=float)
    metrics = [
        {
            "time": t,
            "interactions": int(3 * t),
            "loss": float(np.exp(-t * (1 + sigma)) + seed * 1e-3),
            "accuracy": 0.5 + 0.1 * t,
            "consensus": 1e-3 / (1 + t),
            "bits": int(1000 * t),
        }
        for t in times
    ]
    meta = {"run_id": identifier, "status": status, "seed": seed, "error": None}
    if swept:
        meta["sweep"] = {
            "index": 0,
            "keys": ["topology.kind", "compute.sigma"],
            "params": {"topology.kind": kind, "compute.sigma": sigma},
            "case": case,
            "replicate": replicate,
        }
    return write_run(
        out, "fake", identifier, config, meta, metrics_table(metrics, list(metrics[0]))
    )


def test_run_id_is_stable_and_sensitive():
    config = {"name": "a", "seed": 1, "topology": {"kind": "ring"}}
    assert run_id(config) == run_id(json.loads(json.dumps(config)))
    assert run_id(config) != run_id({**config, "seed": 2})
    assert len(run_id(config)) == 12


def test_write_run_replaces_atomically_and_leaves_no_staging(tmp_path):
    first = fake_run(tmp_path, status="failed")
    second = fake_run(tmp_path, status="complete")
    assert first == second
    _, meta, table = read_run(second)
    assert meta["status"] == "complete" and table.num_rows == 4
    assert [p.name for p in (tmp_path / "fake").iterdir()] == [second.name]


def test_collect_gives_one_tidy_row_per_recording_point(tmp_path):
    for kind in ("ring", "complete"):
        for sigma in (0.0, 1.0):
            for replicate, seed in enumerate((11, 12)):
                fake_run(tmp_path, kind=kind, sigma=sigma, seed=seed, replicate=replicate)
    frame = collect(tmp_path / "fake")
    assert len(frame) == 2 * 2 * 2 * 4
    assert list(frame.columns[:7]) == [
        "name",
        "topology.kind",
        "compute.sigma",
        "seed",
        "replicate",
        "run_id",
        "status",
    ]
    assert {"time", "interactions", "loss", "accuracy", "consensus", "bits"} <= set(frame.columns)
    assert parameters_of(frame) == ["topology.kind", "compute.sigma"]
    assert set(frame["compute.sigma"]) == {0.0, 1.0}
    assert frame["run_id"].nunique() == 8
    assert (frame["status"] == "complete").all()


def test_collect_cli_writes_parquet_that_pandas_loads_in_one_line(tmp_path, capsys):
    fake_run(tmp_path, kind="ring", seed=2**63 + 5)  # replicate seeds use all 64 bits
    fake_run(tmp_path, kind="torus", sigma=1.5)
    assert main(["collect", str(tmp_path / "fake")]) == 0
    target = default_collect_path(tmp_path / "fake")
    assert target == tmp_path / "fake.parquet"
    assert "8 rows from 2 runs" in capsys.readouterr().out
    frame = pd.read_parquet(target)
    assert len(frame) == 8 and set(frame["topology.kind"]) == {"ring", "torus"}
    assert int(frame["seed"].max()) == 2**63 + 5
    assert parameters_of(read_collected(target)) == ["topology.kind", "compute.sigma"]
    assert main(["collect", str(tmp_path / "fake"), "-o", str(tmp_path / "x" / "t.parquet")]) == 0
    assert (tmp_path / "x" / "t.parquet").is_file()


def test_collect_of_plain_runs_uses_the_config_keys_that_vary(tmp_path):
    fake_run(tmp_path, kind="ring", swept=False, seed=1)
    fake_run(tmp_path, kind="ring", swept=False, seed=2)
    fake_run(tmp_path, kind="complete", swept=False, seed=1)
    frame = collect(tmp_path / "fake")
    assert parameters_of(frame) == ["topology.kind"]
    assert "replicate" not in frame.columns and "case" not in frame.columns


def test_section_and_case_values_become_text_columns(tmp_path):
    fake_run(tmp_path, kind="ring", case="baseline")
    fake_run(tmp_path, kind="star", case="hub")
    frame = collect(tmp_path / "fake")
    assert set(frame["case"]) == {"baseline", "hub"}
    frame.attrs["parameters"] = ["topology"]
    frame["topology"] = ["{kind: ring, n: 8}"] * len(frame)
    path = write_collected(frame, tmp_path / "c.parquet")
    assert read_collected(path).attrs["parameters"] == ["topology"]


def test_runs_table_has_status_error_and_final_metrics(tmp_path):
    fake_run(tmp_path, kind="ring")
    empty = pa.table({"time": pa.array([], pa.float64()), "loss": pa.array([], pa.float64())})
    config = {"name": "fake", "seed": 9, "topology": {"kind": "star", "n": 8}}
    meta = {
        "run_id": run_id(config),
        "status": "failed",
        "error": "RuntimeError: boom",
        "sweep": {"keys": ["topology.kind"], "params": {"topology.kind": "star"}},
    }
    write_run(tmp_path, "fake", run_id(config), config, meta, empty)
    runs = runs_table(tmp_path / "fake")
    assert len(runs) == 2
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom" and failed["rows"] == 0
    complete = runs[runs["status"] == "complete"].iloc[0]
    assert complete["final_time"] == 3.0 and complete["final_bits"] == 3000
    assert len(run_directories(tmp_path / "fake")) == 2


def test_collect_of_nothing_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "missing")
    assert main(["collect", str(tmp_path / "missing")]) == 2
    assert "no run directories" in capsys.readouterr().err


RUN_FILES = ["config.yaml", "meta.json", "metrics.parquet"]


def _write_small_run(out: Path) -> Path:
    table = metrics_table([{"time": 0.0, "loss": 1.0}], ["time", "loss"])
    config = {"name": "atomic", "seed": 0}
    return write_run(out, "atomic", "abc", config, {"status": "complete"}, table)


def test_write_run_renames_only_a_directory_holding_every_file(tmp_path, monkeypatch):
    """Every file is written (and non-empty) before the directory is renamed into place."""
    import gossipsim.experiment.results as results

    renamed: list[tuple[str, list[str]]] = []
    original = results.os.rename

    def checking_rename(src, dst):
        src = Path(src)
        if src.is_dir():
            renamed.append((Path(dst).name, sorted(p.name for p in src.iterdir())))
            for name in RUN_FILES:
                assert (src / name).is_file() and (src / name).stat().st_size > 0, name
        return original(src, dst)

    monkeypatch.setattr(results.os, "rename", checking_rename)
    final = _write_small_run(tmp_path)
    _write_small_run(tmp_path)  # replacing an existing copy takes the other branch
    assert [name for name, _ in renamed if name == "abc"] == ["abc", "abc"]
    assert all(files == RUN_FILES for name, files in renamed if name == "abc")
    assert sorted(p.name for p in final.iterdir()) == RUN_FILES


@pytest.mark.parametrize("failing", ["yaml", "parquet", "json"])
def test_a_failing_write_leaves_no_run_directory(tmp_path, monkeypatch, failing):
    import gossipsim.experiment.results as results

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "parquet":
        monkeypatch.setattr(results.pq, "write_table", boom)
    elif failing == "yaml":
        monkeypatch.setattr(results.yaml, "safe_dump", boom)
    else:
        monkeypatch.setattr(results.json, "dumps", boom)
    with pytest.raises(OSError, match="No space"):
        _write_small_run(tmp_path)
    assert list((tmp_path / "atomic").iterdir()) == []


def test_run_id_follows_the_contents_of_the_files_a_config_reads(tmp_path, monkeypatch):
    """A run reads its trace, links, edge list...: editing one must not reuse old results."""
    monkeypatch.chdir(tmp_path)
    Path("steps.csv").write_text("node,duration\n0,1.0\n1,2.0\n")
    Path("ring.txt").write_text("0 1\n1 2\n2 0\n")
    config = {
        "name": "files",
        "topology": {"kind": "edge_list", "path": "ring.txt"},
        "compute": {"kind": "trace", "path": "steps.csv"},
        "algorithm": {"kind": "swarmsgd"},
        "stop": {"time": 1.0},
    }
    before = run_id(validate_data(config).resolved())
    assert run_id(validate_data(config).resolved()) == before  # same contents, same id
    Path("steps.csv").write_text("node,duration\n0,1.0\n1,3.0\n")
    edited_trace = run_id(validate_data(config).resolved())
    assert edited_trace != before
    Path("ring.txt").write_text("0 2\n2 1\n1 0\n")
    assert run_id(validate_data(config).resolved()) not in (before, edited_trace)


def test_a_resumed_sweep_reruns_a_run_whose_trace_changed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("steps.csv").write_text("node,duration\n0,1.0\n1,2.0\n")
    Path("base.yaml").write_text(
        "name: traced\n"
        "topology: {kind: ring, n: 4}\n"
        "objective: {kind: least_squares, dataset: {kind: synthetic, n_samples: 200}}\n"
        "compute: {kind: trace, path: steps.csv}\n"
        "algorithm: {kind: swarmsgd}\n"
        "stop: {time: 5.0}\n"
    )
    assert main(["sweep", "base.yaml", "--executor", "serial", "--out", "out", "--quiet"]) == 0
    Path("steps.csv").write_text("node,duration\n0,1.0\n1,4.0\n")
    assert main(["sweep", "base.yaml", "--executor", "serial", "--out", "out", "--quiet"]) == 0
    runs = [p for p in (tmp_path / "out" / "traced").iterdir() if (p / "meta.json").exists()]
    assert len(runs) == 2  # the edited trace is another run, not the old one's result
