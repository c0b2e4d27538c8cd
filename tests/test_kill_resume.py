"""SIGKILL a sweep (real subprocesses) at random moments: nothing half-written, resume finishes.

After every kill each run directory present is whole (config, meta, metrics all readable,
status complete); re-running the sweep runs exactly the missing runs, and the final
results equal those of an uninterrupted sweep, bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
KILL_CYCLES = 5

SWEEP = """\
name: killme
seed: 4
objective:
  kind: logistic
  dataset: {kind: synthetic, n_samples: 1500, n_features: 8}
  batch_size: 16
topology: {kind: random_regular, n: 16, degree: 4}
compute: {kind: exponential, mean: 1.0}
algorithm: {kind: swarmsgd, lr: 0.05}
stop: {time: 30000}
record: {every: 1000}
sweep:
  grid:
    algorithm.lr: [0.02, 0.05, 0.1]
    topology.kind: [random_regular, complete]
  seeds: 2
"""
TOTAL = 12


def sweep(config: Path, out: Path, executor: str = "serial") -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gossipsim",
            "sweep",
            str(config),
            "--out",
            str(out),
            "--executor",
            executor,
            "--workers",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true"},
        start_new_session=True,
    )


def complete_runs(out: Path) -> dict[str, bytes]:
    """Every visible run directory must be whole; return run id → metrics bytes."""
    runs: dict[str, bytes] = {}
    root = out / "killme"
    if not root.exists():
        return runs
    for path in root.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        assert sorted(p.name for p in path.iterdir()) == [
            "config.yaml",
            "meta.json",
            "metrics.parquet",
        ], path
        meta = json.loads((path / "meta.json").read_text())
        assert meta["status"] == "complete", meta
        assert yaml.safe_load((path / "config.yaml").read_text())["name"] == "killme"
        assert pq.read_table(path / "metrics.parquet").num_rows == 31
        runs[path.name] = (path / "metrics.parquet").read_bytes()
    return runs


def test_sigkill_at_random_moments_then_resume(tmp_path):
    config = tmp_path / "killme.yaml"
    config.write_text(SWEEP)
    out = tmp_path / "results"
    rng = random.Random(20261125)
    done_before = 0
    for cycle in range(KILL_CYCLES):
        if done_before >= TOTAL - 2:
            break
        process = sweep(config, out, "process" if cycle % 2 else "serial")
        # Kill at a random moment after the sweep has made progress (a run landed), so the
        # test does not depend on how fast this machine is.
        deadline = time.monotonic() + 120
        while len(complete_runs(out)) == done_before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        done = len(complete_runs(out))
        assert done > done_before
        done_before = done
    assert done_before < TOTAL, "the kills came too late to interrupt anything"
    finish = sweep(config, out)
    stdout, stderr = finish.communicate(timeout=600)
    assert finish.returncode == 0, stderr
    match = re.search(r"(\d+) complete; (\d+) already done", stdout)
    assert match, stdout
    assert int(match.group(1)) == TOTAL  # complete in all, of which these were already done:
    assert int(match.group(2)) == done_before
    resumed = complete_runs(out)
    assert len(resumed) == TOTAL

    clean_out = tmp_path / "clean"
    clean = sweep(config, clean_out, "process")
    clean.communicate(timeout=600)
    assert clean.returncode == 0
    assert complete_runs(clean_out) == resumed
