"""Sweeps: expansion, validation before any run, resume, failures, executors agree bit for bit."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import gossipsim.experiment.runner
from gossipsim.cli import main
from gossipsim.experiment.config import ConfigError, load_config
from gossipsim.experiment.results import code_fingerprint, read_run, run_directories
from gossipsim.experiment.sweep import expand, load_sweep, run_sweep
from gossipsim.system.rng import Streams

BASE = """\
name: sw
seed: 5
objective:
  kind: logistic
  dataset: {kind: synthetic, n_samples: 300, n_features: 4}
  partition: {kind: dirichlet, alpha: 0.5}
  batch_size: 8
topology: {kind: ring, n: 6}
compute: {kind: lognormal, mean: 1.0, sigma: 0.5}
network: {latency: 0.01, bandwidth: 1.0e6}
algorithm: {kind: swarmsgd, lr: 0.05}
stop: {time: 6}
record: {every: 2}
"""


def write(tmp_path: Path, sweep: str, base: str = BASE, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(base + textwrap.dedent(sweep))
    return path


def test_grid_zip_seeds_expand_to_the_product(tmp_path):
    path = write(
        tmp_path,
        """\
        sweep:
          grid:
            topology.kind: [ring, complete]
            algorithm.lr: [0.01, 0.05, 0.1]
          zip:
            topology.n: [6, 8]
            objective.batch_size: [4, 16]
          seeds: 2
        """,
    )
    sweep = load_sweep(path, check=False)
    assert len(sweep) == 2 * 3 * 2 * 2
    assert sweep.keys == ["topology.kind", "algorithm.lr", "topology.n", "objective.batch_size"]
    pairs = {(r.config.topology.n, r.config.objective.batch_size) for r in sweep.runs}
    assert pairs == {(6, 4), (8, 16)}
    combos = {(r.config.topology.kind, r.config.algorithm.lr) for r in sweep.runs}
    assert len(combos) == 6
    # Replicate r gets an independent stream of the file's seed, recorded in its config.
    seeds = {r.replicate: r.seed for r in sweep.runs}
    assert seeds == {0: Streams(5).child(0).seed, 1: Streams(5).child(1).seed}
    assert len({r.run_id for r in sweep.runs}) == len(sweep)
    assert "sweep" not in sweep.runs[0].config.resolved()


def test_cases_are_named_combinations(tmp_path):
    path = write(
        tmp_path,
        """\
        sweep:
          cases:
            slow-ring: {topology.kind: ring, compute.mean: 2.0}
            fast-complete: {topology: {kind: complete, n: 6}}
          grid: {algorithm.lr: [0.01, 0.1]}
        """,
    )
    sweep = load_sweep(path, check=False)
    assert len(sweep) == 4
    assert [r.case for r in sweep.runs] == ["slow-ring"] * 2 + ["fast-complete"] * 2
    assert sweep.runs[0].config.compute.mean == 2.0
    assert sweep.runs[2].config.topology.kind == "complete"
    table = sweep.format_table()
    assert "case" in table.splitlines()[0] and "fast-complete" in table


def test_swept_kind_drops_keys_the_new_kind_does_not_have(tmp_path):
    path = write(
        tmp_path,
        """\
        sweep:
          grid:
            objective.partition.kind: [iid, dirichlet, shards]
            compute.kind: [constant, lognormal]
        """,
    )
    sweep = load_sweep(path, check=False)
    by_kind = {(r.config.objective.partition.kind, r.config.compute.kind): r for r in sweep.runs}
    iid = by_kind[("iid", "constant")]
    assert set(iid.dropped) == {"objective.partition.alpha", "compute.sigma"}
    assert by_kind[("dirichlet", "lognormal")].config.objective.partition.alpha == 0.5
    assert by_kind[("dirichlet", "lognormal")].config.compute.sigma == 0.5
    assert by_kind[("dirichlet", "lognormal")].dropped == []


def test_swept_key_the_kind_lacks_is_still_an_error(tmp_path):
    path = write(tmp_path, "sweep:\n  grid:\n    topology.degree: [3]\n")
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert re.search(r"s\.yaml:16 .*topology\.degree: unknown key 'degree'", message), message
    assert "topology.degree=3" in message


@pytest.mark.parametrize(
    ("sweep", "pattern"),
    [
        (
            "sweep:\n  grid:\n    compute.sigma: [0.5, -1.0]\n",
            r"s\.yaml:16 \(sweep: compute\.sigma=-1\.0\): compute\.sigma: .*greater than or equal",
        ),
        (
            "sweep:\n  grid:\n    topology.kind: [ring, hypercube]\n",
            r"s\.yaml:8: topology\.n: hypercube needs a power of two, got 6 "
            r"\[sweep combination: topology\.kind=hypercube\]",
        ),
        ("sweep:\n  grid:\n    topology.kind: ring\n", r"s\.yaml:16: sweep\.grid\.topology\.kind"),
        ("sweep:\n  gird: {}\n", r"s\.yaml:15: sweep\.gird: unknown key 'gird'; valid keys"),
        ("sweep:\n  seeds: 0\n", r"s\.yaml:15: sweep\.seeds: must be a positive integer"),
        (
            "sweep:\n  zip:\n    topology.n: [6, 8]\n    algorithm.lr: [0.1]\n",
            r"s\.yaml:15: sweep\.zip: lists must have equal lengths",
        ),
    ],
)
def test_a_bad_combination_stops_the_sweep_before_any_run(tmp_path, capsys, sweep, pattern):
    path = write(tmp_path, sweep)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--executor", "serial", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "Traceback" not in err
    assert not out.exists()


def test_dry_run_prints_the_table_and_runs_nothing(tmp_path, capsys):
    path = write(tmp_path, "sweep:\n  grid: {topology.kind: [ring, complete]}\n  seeds: 2\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    lines = printed.strip().splitlines()
    assert lines[0].split()[:3] == ["#", "topology.kind", "seed"]
    assert sum(" complete " in line for line in lines) == 2
    assert "4 runs of sw" in lines[-1]
    assert not out.exists()


def _failing_after_two_rows(real):
    """run_to_directory that raises at the third recorded row of complete-graph runs."""

    def run(config, out, progress=None):
        if config.topology.kind != "complete":
            return real(config, out, progress=progress)

        def boom(row):
            if progress is not None:
                progress(row)
            if row["time"] >= 2.0:
                raise RuntimeError("injected failure at t=2")

        return real(config, out, progress=boom)

    return run


def test_failures_are_recorded_and_retried_and_complete_runs_skipped(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "sweep:\n  grid: {topology.kind: [ring, complete]}\n  seeds: 2\n")
    out = tmp_path / "out"
    real = gossipsim.experiment.runner.run_to_directory
    monkeypatch.setattr(
        gossipsim.experiment.runner, "run_to_directory", _failing_after_two_rows(real)
    )
    args = ["sweep", str(path), "--out", str(out), "--executor", "serial", "--quiet"]
    assert main(args) == 3
    printed = capsys.readouterr().out
    assert "2 complete, 2 failed" in printed
    assert printed.count("injected failure at t=2") == 2
    runs = run_directories(out / "sw")
    assert len(runs) == 4
    failed = []
    for run in runs:
        config, meta, table = read_run(run)
        assert meta["sweep"]["params"] == {"topology.kind": config["topology"]["kind"]}
        assert meta["sweep"]["replicate"] in (0, 1)
        if config["topology"]["kind"] == "complete":
            failed.append(run.name)
            assert meta["status"] == "failed"
            assert "RuntimeError: injected failure at t=2" in meta["error"]
            assert table.column("time").to_pylist() == [0.0, 2.0]  # rows up to the failure
        else:
            assert meta["status"] == "complete" and meta["error"] is None
    assert not [p for p in (out / "sw").iterdir() if p.name.startswith(".")]

    # Second pass: complete runs are skipped, failed ones retried (and now succeed).
    monkeypatch.setattr(gossipsim.experiment.runner, "run_to_directory", real)
    sweep = load_sweep(path)
    outcome = run_sweep(sweep, out, executor="serial", progress=False)
    assert outcome.ok
    assert sorted(r.run_id for r in outcome.results if not r.skipped) == sorted(failed)
    again = run_sweep(sweep, out, executor="serial", progress=False)
    assert all(r.skipped for r in again.results)


def test_runs_computed_by_other_code_are_reported_and_rerun_on_request(tmp_path, capsys):
    path = write(tmp_path, "sweep:\n  seeds: 3\n")
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--executor", "serial", "--quiet"]
    assert main(args) == 0
    runs = run_directories(out / "sw")
    assert len(runs) == 3
    code = read_run(runs[0])[1]["code"]
    assert code == code_fingerprint() and len(code) == 16
    # Pretend one run was computed by an older checkout.
    meta_path = runs[1] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["code"] = "0123456789abcdef"
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 already done, skipped" in printed
    assert "1 of the skipped runs were computed by other gossipsim code" in printed
    assert json.loads(meta_path.read_text())["code"] == "0123456789abcdef"  # left alone
    assert main([*args, "--rerun-stale"]) == 0
    printed = capsys.readouterr().out
    assert "2 already done, skipped" in printed and "other gossipsim code" not in printed
    assert json.loads(meta_path.read_text())["code"] == code_fingerprint()


def test_failure_before_any_row_leaves_an_empty_valid_table(tmp_path, monkeypatch):
    path = write(tmp_path, "")

    def broken(config, out, progress=None):
        raise ValueError("nothing recorded")

    monkeypatch.setattr(gossipsim.experiment.runner, "run_to_directory", broken)
    outcome = run_sweep(load_sweep(path), tmp_path / "out", executor="serial", progress=False)
    (result,) = outcome.results
    assert result.status == "failed" and "nothing recorded" in result.error
    config, meta, table = read_run(result.path)
    assert table.num_rows == 0 and "loss" in table.column_names
    assert meta["status"] == "failed" and meta["sweep"]["params"] == {}
    assert load_config(result.path / "config.yaml").resolved() == config


def test_diverged_runs_are_listed_and_not_rerun(tmp_path, capsys):
    diverging = BASE.replace("kind: logistic", "kind: least_squares").replace(
        "stop: {time: 6}", "stop: {time: 200}"
    )
    path = write(tmp_path, "sweep:\n  grid: {algorithm.lr: [0.01, 50.0]}\n", base=diverging)
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--executor", "serial", "--quiet"]
    assert main(args) == 3
    printed = capsys.readouterr().out
    assert "1 complete, 1 diverged" in printed
    assert re.search(r"diverged: sw/\w+ \(#1, algorithm\.lr=50\.0", printed), printed
    assert main(args) == 3
    assert "2 already done, skipped" in capsys.readouterr().out


def _tables(out: Path) -> dict[str, object]:
    return {p.name: pq.read_table(p / "metrics.parquet") for p in run_directories(out / "sw")}


def test_executors_give_bit_identical_results(tmp_path):
    path = write(
        tmp_path,
        """\
        sweep:
          grid: {topology.kind: [ring, complete]}
          seeds: 2
        """,
    )
    sweep = load_sweep(path)
    reference = None
    for label, options in [
        ("serial", {"executor": "serial"}),
        ("process", {"executor": "process", "workers": 2}),
        ("dask", {"executor": "dask", "workers": 2}),
        ("dask-client", {"executor": "dask", "workers": 2, "results_on": "client"}),
    ]:
        out = tmp_path / label
        outcome = run_sweep(sweep, out, progress=False, **options)
        assert outcome.ok, label
        tables = _tables(out)
        assert sorted(tables) == sorted(r.run_id for r in sweep.runs)
        if reference is None:
            reference = tables
            continue
        for run_id, table in tables.items():
            assert table.equals(reference[run_id]), f"{label}: {run_id} differs from serial"
        meta = json.loads((out / "sw" / run_id / "meta.json").read_text())
        assert meta["sweep"]["params"]["topology.kind"] in ("ring", "complete")


def test_saved_config_reproduces_a_sweep_run(tmp_path):
    path = write(tmp_path, "sweep:\n  seeds: 2\n")
    out = tmp_path / "out"
    outcome = run_sweep(load_sweep(path), out, executor="serial", progress=False)
    run = outcome.results[1].path
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["seed"] == Streams(5).child(1).seed
    assert main(["run", str(run / "config.yaml"), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    (again,) = run_directories(tmp_path / "again" / "sw")
    assert again.name == run.name
    assert pq.read_table(again / "metrics.parquet").equals(pq.read_table(run / "metrics.parquet"))


def test_expand_from_data_without_a_sweep_section_is_one_run():
    data = yaml.safe_load(BASE)
    sweep = expand(data)
    assert len(sweep) == 1 and sweep.runs[0].params == {} and sweep.runs[0].replicate is None
