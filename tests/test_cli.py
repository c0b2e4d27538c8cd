"""The command line as a user meets it: run, validate, plot, and errors on bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from gossipsim.cli import main
from gossipsim.experiment.config import load_config

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
name: clitest
seed: 11
objective:
  kind: softmax
  dataset: {kind: synthetic, n_samples: 600, n_features: 4, n_classes: 3}
  partition: {kind: dirichlet, alpha: 0.5}
  batch_size: 8
topology: {kind: ring, n: 8}
compute: {kind: lognormal, mean: 1.0, sigma: 0.5}
network: {latency: 0.01, bandwidth: 1.0e6}
algorithm:
  kind: swarmsgd
  lr: 0.1
  quantizer: {kind: lattice, bits: 8, epsilon: 1.0e-3}
  nonblocking: true
stop: {time: 30}
record: {every: 5}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_run_writes_a_complete_run_directory(tmp_path, capsys):
    config = write(tmp_path, CONFIG)
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "clitest/" in summary and "complete" in summary
    (run,) = [p for p in (out / "clitest").iterdir()]
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "meta.json", "metrics.parquet"]
    table = pq.read_table(run / "metrics.parquet")
    for column in ("time", "interactions", "loss", "accuracy", "consensus", "bits"):
        assert column in table.column_names
    times = table.column("time").to_pylist()
    assert times[0] == 0.0 and times[-1] == 30.0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["seed"] == 11
    assert meta["spectral_gap"] == pytest.approx(2 - 2 * math.cos(2 * math.pi / 8))
    assert meta["versions"]["numpy"]
    # The saved config is fully resolved and loads back to the same run.
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["compute"]["heterogeneity"] == {"kind": "none"}
    assert load_config(run / "config.yaml").resolved() == resolved
    assert not [p for p in (out / "clitest").iterdir() if p.name.startswith(".")]


def test_same_config_and_seed_gives_identical_metrics(tmp_path):
    config = write(tmp_path, CONFIG)
    tables = []
    for out in ("a", "b"):
        assert main(["run", str(config), "--out", str(tmp_path / out), "--quiet"]) == 0
        (run,) = list((tmp_path / out / "clitest").iterdir())
        tables.append(pq.read_table(run / "metrics.parquet"))
    assert tables[0].equals(tables[1])


def test_overrides_change_the_run(tmp_path, capsys):
    config = write(tmp_path, CONFIG)
    out = tmp_path / "results"
    args = ["run", str(config), "--out", str(out), "--quiet"]
    assert main([*args, "--set", "algorithm.lr=0.02", "--set", "topology.n=16"]) == 0
    (run,) = list((out / "clitest").iterdir())
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["algorithm"]["lr"] == 0.02 and resolved["topology"]["n"] == 16


def test_validate_and_plot(tmp_path, capsys):
    config = write(tmp_path, CONFIG)
    assert main(["validate", str(config)]) == 0
    assert "ok" in capsys.readouterr().out
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(config), "--out", str(out), "--quiet", "--set", "seed=12"]) == 0
    assert main(["plot", str(out / "clitest"), "--x", "time", "--y", "loss"]) == 0
    png = out / "clitest" / "loss_vs_time.png"
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(out / "clitest"), "--y", "nonsense"]) == 2
    assert "unknown column 'nonsense'" in capsys.readouterr().err


BAD = {
    "unknown key": (
        ("  lr: 0.1\n", "  lr: 0.1\n  lerning_rate: 0.1\n"),
        r"c.yaml:14: algorithm.lerning_rate: unknown key",
    ),
    "wrong type": (
        ("topology: {kind: ring, n: 8}", "topology: {kind: ring, n: many}"),
        r"c.yaml:8: topology.n",
    ),
    "negative rate": (
        ("network: {latency: 0.01", "network: {latency: -0.01"),
        r"c.yaml:10: network.latency: .*greater than or equal to 0",
    ),
    "missing data file": (
        (
            "dataset: {kind: synthetic, n_samples: 600, n_features: 4, n_classes: 3}",
            "dataset: {kind: libsvm, path: missing.svm}",
        ),
        r"c.yaml:5: objective.dataset.path: data file not found: missing.svm",
    ),
    "unknown algorithm": (
        ("kind: swarmsgd", "kind: gossip"),
        r"c.yaml:12: algorithm.kind: unknown kind 'gossip'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_nonzero_naming_field_and_line(tmp_path, capsys, case):
    (old, new), pattern = BAD[case]
    assert old in CONFIG
    config = write(tmp_path, CONFIG.replace(old, new))
    assert main(["run", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_disconnected_edge_list_named_with_line(tmp_path, capsys):
    edges = tmp_path / "edges.txt"
    edges.write_text("0 1\n1 2\n2 3\n3 0\n4 5\n5 6\n6 7\n7 4\n")
    text = CONFIG.replace(
        "topology: {kind: ring, n: 8}", f"topology: {{kind: edge_list, n: 8, path: {edges}}}"
    )
    config = write(tmp_path, text)
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml:8: topology" in err and "disconnected" in err


def test_console_script_end_to_end(tmp_path):
    """The installed `gossipsim` command, as a user runs it (no terminal: no progress bar)."""
    config = write(tmp_path, CONFIG)
    exe = Path(sys.executable).with_name("gossipsim")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "gossipsim"]
    env = {**os.environ, "CI": "true"}
    done = subprocess.run(
        [*command, "run", str(config), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout
    bad = subprocess.run(
        [*command, "validate", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2 and "config file not found" in bad.stderr


def test_the_command_under_a_profiler_exits_so_that_the_profile_is_written(tmp_path):
    """The command skips the interpreter's teardown (``cli.finish``), but not under a
    profiler, which writes its report at exit."""
    config = write(tmp_path, CONFIG)
    profile = tmp_path / "run.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "gossipsim"]
        + ["validate", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ": ok — swarmsgd" in done.stdout
    assert profile.stat().st_size > 0


def test_iterations_only_stop_runs_with_a_progress_bar(tmp_path, monkeypatch, capsys):
    config = write(
        tmp_path,
        """\
        name: gcit
        objective: {kind: least_squares, dataset: {kind: synthetic, n_samples: 600, n_features: 5}}
        compute: {kind: exponential, mean: 1.0}
        algorithm: {kind: gradient_coding, scheme: partial, workers: 6, load: 2}
        stop: {iterations: 20}
        """,
    )
    assert main(["validate", str(config)]) == 0
    assert "parameter-server star (n=7" in capsys.readouterr().out
    assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 0
    assert "complete (iterations)" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # their file paths (configs/traces/...) are relative to the root
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_edge_list_without_n_takes_its_size_from_the_file(tmp_path, capsys):
    edges = tmp_path / "ring4.txt"
    edges.write_text("# a 4-node ring\n0 1\n1 2\n2 3\n3 0\n")
    text = CONFIG.replace(
        "topology: {kind: ring, n: 8}", f"topology: {{kind: edge_list, path: {edges}}}"
    )
    config = write(tmp_path, text)
    assert main(["validate", str(config), "--print"]) == 0
    out = capsys.readouterr().out
    assert "(n=4, " in out
    assert yaml.safe_load(out.split(f"{config}: ok")[0])["topology"]["n"] == 4


def test_edge_list_missing_node_ids_are_named(tmp_path, capsys):
    edges = tmp_path / "gap.txt"
    edges.write_text("0 1\n1 2\n2 5\n5 0\n")  # ids 3 and 4 appear nowhere
    text = CONFIG.replace(
        "topology: {kind: ring, n: 8}", f"topology: {{kind: edge_list, path: {edges}}}"
    )
    config = write(tmp_path, text)
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "topology.path: node ids 3, 4 appear in no edge of" in err, err
    assert "components" not in err
