"""Unwritable output locations are refused before any work, in one line naming the path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import gossipsim.experiment.runner
from gossipsim.cli import main
from tests.test_results import fake_run

CONFIG = """\
name: out
objective:
  dataset: {kind: synthetic, n_samples: 200, n_features: 3}
topology: {kind: ring, n: 4}
algorithm: {kind: swarmsgd}
stop: {time: 4}
"""
SWEEP = CONFIG + "sweep:\n  grid: {algorithm.lr: [0.01, 0.02]}\n"


def config(tmp_path: Path, text: str = CONFIG) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def no_simulation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started although the output cannot be written")

    monkeypatch.setattr(gossipsim.experiment.runner, "execute", refuse)


def one_line_error(capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_run_into_a_file_is_refused_before_simulating(tmp_path, capsys, no_simulation):
    target = tmp_path / "f"
    target.touch()
    assert main(["run", config(tmp_path), "--out", str(target), "--quiet"]) == 2
    one_line_error(capsys, f"--out {target}", "not a directory")


def test_run_below_a_file_is_refused(tmp_path, capsys, no_simulation):
    target = tmp_path / "f"
    target.touch()
    assert main(["run", config(tmp_path), "--out", str(target / "sub"), "--quiet"]) == 2
    one_line_error(capsys, f"{target} is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_run_into_a_read_only_directory_is_refused(tmp_path, capsys, no_simulation):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        assert main(["run", config(tmp_path), "--out", str(target), "--quiet"]) == 2
    finally:
        target.chmod(0o700)
    one_line_error(capsys, f"--out {target}", "cannot write there")


def test_refused_writes_are_reported_whatever_the_cause(tmp_path, capsys, monkeypatch):
    """A file system that refuses the write (read-only mount, quota) is named like a file."""
    import gossipsim.experiment.results as results

    def read_only(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(results.Path, "mkdir", read_only)
    with pytest.raises(results.OutputError, match=r"--out .*: cannot write there \(Read-only"):
        results.check_output_dir(tmp_path / "new")


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sweep_into_a_file_is_refused_before_any_run(tmp_path, capsys, executor, no_simulation):
    target = tmp_path / "f"
    target.touch()
    args = ["sweep", config(tmp_path, SWEEP), "--out", str(target), "--executor", executor]
    assert main([*args, "--quiet"]) == 2
    one_line_error(capsys, f"--out {target}", "not a directory")


def test_plot_output_below_a_file_is_refused(tmp_path, capsys):
    fake_run(tmp_path)
    blocker = tmp_path / "f"
    blocker.touch()
    assert main(["plot", str(tmp_path / "fake"), "-o", str(blocker / "plot.png")]) == 2
    one_line_error(capsys, f"--output {blocker / 'plot.png'}", "not a directory")
    assert main(["plot", str(tmp_path / "fake"), "-o", str(tmp_path)]) == 2
    one_line_error(capsys, "is a directory")


def test_collect_and_report_outputs_are_checked(tmp_path, capsys):
    fake_run(tmp_path)
    blocker = tmp_path / "f"
    blocker.touch()
    assert main(["collect", str(tmp_path / "fake"), "-o", str(blocker / "x.parquet")]) == 2
    one_line_error(capsys, "not a directory")
    assert main(["report", str(tmp_path / "fake"), "-o", str(blocker / "r.md")]) == 2
    one_line_error(capsys, "not a directory")
