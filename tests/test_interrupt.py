"""SIGTERM keeps a run's recorded rows, marked interrupted; SIGKILL leaves nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent

LONG = """\
name: long
seed: 1
objective:
  kind: logistic
  dataset: {kind: synthetic, n_samples: 2000, n_features: 10}
topology: {kind: random_regular, n: 64, degree: 4}
compute: {kind: exponential, mean: 1.0}
algorithm: {kind: swarmsgd, lr: 0.05}
stop: {time: 1.0e7}
record: {every: 1.0}
"""


# Runs the CLI with a progress hook that says "recorded <rows>" on stdout after each metrics
# row, so the tests signal a run that has provably started and recorded, whatever the
# machine's speed (a fresh install compiles kernels first), instead of after a fixed sleep.
LAUNCH = """\
import sys
import gossipsim.cli as cli

rows = 0


def hook(config, quiet):
    def update(row):
        global rows
        rows += 1
        print("recorded", rows, flush=True)

    return update, None


cli._progress_bar = hook
sys.exit(cli.main(sys.argv[1:]))
"""


def start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "long.yaml"
    config.write_text(LONG)
    out = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "run", str(config), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    return process, out


def wait_recorded(process: subprocess.Popen, rows: int) -> list[str]:
    """Block until the run reports ``rows`` recorded metrics rows; return its output so far."""
    lines = []
    while True:
        line = process.stdout.readline()
        assert line, ("the run ended before recording", lines, process.communicate())
        lines.append(line)
        if line.split() == ["recorded", str(rows)]:
            return lines


def test_sigterm_writes_an_interrupted_run_with_its_rows(tmp_path):
    process, out = start(tmp_path)
    wait_recorded(process, 3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    (run,) = list((out / "long").iterdir())
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    table = pq.read_table(run / "metrics.parquet")
    assert table.num_rows >= 2
    assert table.column("time").to_pylist()[0] == 0.0
    assert "interrupted" in stdout


def test_sigkill_leaves_no_run_directory(tmp_path):
    process, out = start(tmp_path)
    wait_recorded(process, 2)
    process.kill()
    process.communicate(timeout=60)
    sweep_dir = out / "long"  # the results directory itself is created before the run
    runs = (
        [p for p in sweep_dir.iterdir() if not p.name.startswith(".")] if sweep_dir.exists() else []
    )
    assert runs == []
