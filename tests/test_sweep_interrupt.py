"""Ctrl-C on a process-pool sweep (SIGINT to the whole process group) ends it with one
line saying how far it got: no traceback or 'Exception ignored' noise from the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SWEEP = """\
name: ctrlc
objective:
  dataset: {kind: synthetic, n_samples: 2000, n_features: 10}
topology: {kind: random_regular, n: 64, degree: 4}
compute: {kind: exponential, mean: 1.0}
algorithm: {kind: swarmsgd, lr: 0.05}
stop: {time: 1.0e7}
record: {every: 1.0}
sweep:
  grid: {algorithm.lr: [0.01, 0.02]}
"""


def _session(sid: int) -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds) of every live process in session ``sid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return found


def _workers_busy(sid: int, cpu: float) -> bool:
    """Two pool workers (grandchildren of the sweep) have each spent ``cpu`` seconds."""
    procs = _session(sid)
    children = {pid for pid, (ppid, _) in procs.items() if ppid == sid}
    workers = [t for pid, (ppid, t) in procs.items() if ppid in children]
    return len(workers) >= 2 and min(workers) >= cpu


def _importing(sid: int) -> bool:
    """A child of the sweep (the fork server) is busy, and no worker exists yet."""
    procs = _session(sid)
    children = {pid: t for pid, (ppid, t) in procs.items() if ppid == sid}
    workers = [pid for pid, (ppid, _) in procs.items() if ppid in children]
    return not workers and any(t >= 0.3 for t in children.values())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("moment", ["importing", "running"])
def test_ctrl_c_on_a_process_sweep_is_quiet(tmp_path, moment):
    config = tmp_path / "s.yaml"
    config.write_text(SWEEP)
    process = subprocess.Popen(
        [sys.executable, "-m", "gossipsim", "sweep", str(config), "--out", str(tmp_path / "o")]
        + ["--executor", "process", "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        if moment == "importing":  # the fork server is preloading gossipsim
            while process.poll() is None and not _importing(process.pid):
                os.sched_yield()
        else:  # both workers are inside their simulations
            while process.poll() is None and not _workers_busy(process.pid, 0.3):
                os.sched_yield()
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


STOP_A_WORKER = """
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

from numba.np.ufunc import parallel

from gossipsim.experiment.sweep import _stop_workers, _worker_init

if __name__ == "__main__":
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=_worker_init, initargs=(1,))
    pool.submit(parallel._set_init_process_lock).result()  # as numba's parallel backend does
    pool.submit(time.sleep, 60)
    time.sleep(0.5)
    _stop_workers(pool)
    pool.shutdown(wait=True, cancel_futures=True)
    print("stopped")
"""


def test_stopping_a_worker_leaves_no_semaphore_behind(tmp_path):
    """A worker that numba's parallel backend has run in holds a named semaphore; the
    parent's SIGTERM must not leave it to the resource tracker ("leaked semaphore")."""
    script = tmp_path / "stop_a_worker.py"
    script.write_text(STOP_A_WORKER)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
    assert "leaked" not in done.stderr, done.stderr
