"""Real runs: processes on this machine, measured, and the simulator held against them."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from gossipsim.cli import main
from gossipsim.experiment.config import validate_data
from gossipsim.real import compare, run_real, simulated_config
from gossipsim.real.run import RealRunError, check_config, parse_slow
from gossipsim.system.fit import fit_trace
from gossipsim.system.traces import read_trace

BASE = {
    "name": "real-test",
    "seed": 5,
    "objective": {
        "kind": "logistic",
        "dataset": {"kind": "synthetic", "n_samples": 2000, "n_features": 10},
        "batch_size": 16,
    },
    "topology": {"kind": "ring", "n": 3},
    "algorithm": {"kind": "swarmsgd", "lr": 0.05},
    "stop": {"time": 0.6},
    "record": {"every": 0.1},
}


def config(**algorithm):
    return validate_data({**BASE, "algorithm": {**BASE["algorithm"], **algorithm}})


def shared_memory_blocks() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith("psm_")}


@pytest.mark.parametrize(
    "algorithm",
    [{}, {"nonblocking": True}, {"kind": "dpsgd"}],
    ids=["blocking", "nonblocking", "dpsgd"],
)
def test_a_real_run_gives_a_trace_gossipsim_reads_and_fits(tmp_path, algorithm):
    before = shared_memory_blocks()
    real = run_real(config(**algorithm), slow={0: 2.0})
    out = real.write(tmp_path / "run")
    assert shared_memory_blocks() <= before  # every shared block was unlinked
    trace = read_trace(out / "trace.csv")
    assert set(trace.nodes.tolist()) == {0, 1, 2}
    assert (trace.duration > 0).all() and trace.time is not None
    fit_trace(trace)  # what `gossipsim fit` does with it
    assert real.curve_loss[-1] < real.curve_loss[0]  # it trained
    assert np.isfinite(real.curve_loss).all() and real.curve_time[-1] >= 0.5
    if algorithm.get("kind") == "dpsgd":
        counts = np.bincount(real.step_node)
        assert counts.max() - counts.min() <= 1  # lockstep rounds
    else:
        # The node slowed 2x (by sleeping) takes longer steps than the others. (Not fewer
        # steps: with blocking locks, which are not FIFO, the slow node can starve the others.)
        medians = [float(np.median(real.step_duration[real.step_node == i])) for i in range(3)]
        assert medians[0] > 1.5 * max(medians[1:])
    # The fitted model names the slowed node's share and slowdown as stragglers.
    stragglers = simulated_config(real, out / "trace.csv", fitted=True).compute.stragglers
    assert stragglers.fraction == pytest.approx(1 / 3) and stragglers.slowdown > 1.2


def test_the_simulator_replays_a_real_run_and_gives_finite_errors(tmp_path):
    real = run_real(config())
    out = real.write(tmp_path / "run")
    for fitted in (False, True):
        comparison = compare(real, out / "trace.csv", fitted=fitted)
        summary = comparison.summary()
        assert math.isfinite(summary["mean_relative_loss_error"])
        assert summary["predicted_steps"] > 0
        assert comparison.time.size == comparison.predicted.size


def test_what_a_real_run_cannot_do_is_refused_by_field():
    with pytest.raises(RealRunError, match="algorithm.kind"):
        check_config(validate_data({**BASE, "algorithm": {"kind": "adpsgd"}}))
    with pytest.raises(RealRunError, match="algorithm.momentum"):
        check_config(config(momentum=0.5))
    with pytest.raises(RealRunError, match="stop.time"):
        check_config(validate_data({**BASE, "stop": {"interactions": 10}}))
    with pytest.raises(RealRunError, match="--slow 7=2"):
        parse_slow(["7=2"], 3)
    assert parse_slow(["1=2.5"], 3) == {1: 2.5}


def test_cli_real_writes_the_run_and_compares(tmp_path, capsys):
    path = tmp_path / "real.yaml"
    import yaml

    path.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "out"
    assert main(["real", str(path), "--out", str(out), "--compare"]) == 0
    printed = capsys.readouterr().out
    assert "simulated from the trace" in printed and "simulated from the fitted" in printed
    for name in ("trace.csv", "curve.csv", "exchanges.csv", "meta.json", "comparison.json"):
        assert (out / name).is_file()
    assert main(["real", str(path), "--set", "algorithm.kind=sgp"]) == 2
    assert "algorithm.kind: real runs support" in capsys.readouterr().err


def test_ctrl_c_stops_a_real_run_cleanly(tmp_path):
    """SIGINT to the whole process group (a terminal's Ctrl-C): exit 130, one line, the
    workers gone, no shared memory or semaphore left behind or reported."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump({**BASE, "stop": {"time": 30.0}}))
    before = shared_memory_blocks()
    process = subprocess.Popen(
        [sys.executable, "-m", "gossipsim", "real", str(path), "--out", str(tmp_path / "o")],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(3.0)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted"], err
    assert shared_memory_blocks() <= before
    assert not (tmp_path / "o").exists()


def test_bad_real_input_is_one_line(tmp_path, capsys):
    import yaml

    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["real", str(path), "--slow", "0=0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--slow 0=0.5" in err[0]
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["real", str(path), "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]
