"""SIGTERM keeps a run's recorded rows, marked interrupted; SIGKILL leaves nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "long.yaml"
    config.write_text(LONG)
    out = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "gossipsim", "run", str(config), "--out", str(out), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    return process, out


def wait_running(process: subprocess.Popen, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)


def test_sigterm_writes_an_interrupted_run_with_its_rows(tmp_path):
    process, out = start(tmp_path)
    wait_running(process)
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
    wait_running(process, 2.0)
    process.kill()
    process.communicate(timeout=60)
    runs = (
        [p for p in (out / "long").iterdir() if not p.name.startswith(".")] if out.exists() else []
    )
    assert runs == []
