"""Messages a user meets: where an override error is, directories given as configs, how a
diverged run is described and what an interrupted sweep says."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import gossipsim.experiment.sweep
from gossipsim.cli import main

BASE = """\
name: msg
seed: 5
objective:
  kind: least_squares
  dataset: {kind: synthetic, n_samples: 300, n_features: 4}
  batch_size: 8
topology: {kind: ring, n: 6}
algorithm: {kind: swarmsgd, lr: 0.05}
stop: {time: 6}
record: {every: 2}
"""


def write(tmp_path: Path, text: str = BASE) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_an_unknown_section_from_set_is_located_at_set(tmp_path, capsys):
    assert main(["validate", write(tmp_path), "--set", "foo.bar=1"]) == 2
    err = capsys.readouterr().err
    assert "--set: foo: unknown key 'foo'" in err, err
    assert "c.yaml:" not in err


def test_an_unknown_key_in_a_file_section_from_set_is_located_at_set(tmp_path, capsys):
    assert main(["validate", write(tmp_path), "--set", "algorithm.foo=1"]) == 2
    assert "--set: algorithm.foo: unknown key 'foo'" in capsys.readouterr().err


def test_a_directory_is_not_a_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: is a directory, expected a YAML config file" in err
    assert "not found" not in err


def test_a_diverged_run_says_why(tmp_path, capsys):
    path = write(tmp_path, BASE.replace("stop: {time: 6}", "stop: {time: 200}"))
    args = ["sweep", path, "--out", str(tmp_path / "out"), "--executor", "serial", "--quiet"]
    assert main([*args, "--set", "algorithm.lr=50.0"]) == 3
    captured = capsys.readouterr()
    assert "no error text" not in captured.out + captured.err
    assert re.search(r"diverged: msg/\w+ .*: loss or consensus became non-finite", captured.out)


def test_an_interrupted_sweep_says_how_far_it_got_and_how_to_resume(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, BASE + "sweep:\n  grid: {algorithm.lr: [0.01, 0.02, 0.03]}\n")
    task = gossipsim.experiment.sweep._task
    calls = []

    def interrupt_the_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return task(*args)

    monkeypatch.setattr(gossipsim.experiment.sweep, "_task", interrupt_the_second)
    args = ["sweep", path, "--out", str(tmp_path / "out"), "--executor", "serial", "--quiet"]
    assert main(args) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        "interrupted: 1 of 3 runs of msg finished (1 in this invocation); "
        "run the same command again to resume (finished runs are skipped)"
    )
    monkeypatch.setattr(gossipsim.experiment.sweep, "_task", task)
    assert main(args) == 0
    assert "1 already done, skipped" in capsys.readouterr().out


def test_one_run_is_one_run_in_every_message(tmp_path, capsys, monkeypatch):
    """sweep, --dry-run, collect and report say "1 run", never "1 runs"."""
    monkeypatch.chdir(tmp_path)
    Path("one.yaml").write_text(
        "name: single\n"
        "topology: {kind: ring, n: 4}\n"
        "objective: {kind: least_squares, dataset: {kind: synthetic, n_samples: 200}}\n"
        "algorithm: {kind: swarmsgd}\n"
        "stop: {time: 3.0}\n"
    )
    assert main(["sweep", "one.yaml", "--out", "out", "--dry-run"]) == 0
    assert main(["sweep", "one.yaml", "--out", "out", "--executor", "serial", "--quiet"]) == 0
    assert main(["collect", "out/single"]) == 0
    assert main(["report", "out/single"]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err + Path("out/single/report.md").read_text()
    assert "1 run" in text
    assert not re.search(r"\b1 runs\b", text), text
