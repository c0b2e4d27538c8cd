"""Real runs: processes on this machine, measured, and the simulator held against them."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from gossipsim.cli import main
from gossipsim.experiment.config import validate_data
from gossipsim.real import compare, run_real
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
    # The node slowed 2x (by sleeping) has longer steps than the others.
    median = [float(np.median(real.step_duration[real.step_node == i])) for i in range(3)]
    assert median[0] > 1.5 * max(median[1:])


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


def test_the_sim_vs_real_experiment_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "experiments" / "sim_vs_real.py"
    spec = importlib.util.spec_from_file_location("sim_vs_real", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--seconds", "0.4", "--only", "dpsgd-n4"]) == 0
    table = (tmp_path / "sim_vs_real_summary.md").read_text()
    assert "dpsgd-n4-slow" in table and "trace" in table and "fitted" in table
    assert (tmp_path / "sim_vs_real.png").is_file()
