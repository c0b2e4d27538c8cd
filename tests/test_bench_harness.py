"""The benchmark harness is well formed (the benchmarks themselves run only in ``make bench``).

Every workload YAML validates as a gossipsim config, every named reference exists and
runs on a tiny problem, the phase timer and the CLI probe work on tiny runs of every
executor, a failing workload is reported instead of raised, and the target checks and the
table read a results dictionary as intended. Nothing here asserts a wall-clock figure.
"""

from __future__ import annotations

import copy
import importlib

import pytest
import yaml

from benchmarks import run as bench
from gossipsim.engine.batched import BatchedExecutor, SequentialExecutor
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.config import validate_data
from gossipsim.experiment.runner import prepare, simulate
from tests.conftest import SMALL, make_config


def tiny(**changes) -> dict:
    """SMALL as a dict, stopped after a few interactions, with top-level sections replaced."""
    data = copy.deepcopy(SMALL)
    data["stop"] = {"interactions": 60}
    data.update(changes)
    return data


@pytest.mark.parametrize("name", bench.ORDER)
def test_workload_is_valid(name):
    spec = bench.load_spec(name)
    assert spec["kind"] in ("simulation", "sweep", "cli")
    assert spec.get("unit", "interactions") in bench.UNITS + ("runs",)
    data = dict(spec["config"])
    data.pop("sweep", None)
    if spec.get("requires_algorithm") == "gradient_coding":
        from gossipsim.algorithms import ALGORITHMS

        if "gradient_coding" not in ALGORITHMS:
            pytest.skip("gradient coding is not in the package yet")
    config = validate_data(data)
    if spec["kind"] == "cli":  # the default path: a user's config has no engine section
        assert "engine" not in spec["config"]
    for key in ("reference", "limit"):
        if spec.get(key):
            importlib.import_module(f"benchmarks.reference.{spec[key]}")
    if name in bench.COMPARED:  # swarm-1k's data and graph
        one = bench.load_spec("swarm-1k")["config"]
        assert spec["config"]["objective"] == one["objective"]
        assert spec["config"]["topology"] == one["topology"]
        assert config.algorithm.kind != "swarmsgd"


@pytest.mark.parametrize("module", ["swarm_logistic", "compiled_limit", "mlp_digits"])
def test_reference_runs(module):
    reference = importlib.import_module(f"benchmarks.reference.{module}")
    if module == "mlp_digits":
        config = make_config(
            **{"objective": {"kind": "mlp", "hidden": [8], "dataset": {"kind": "digits"}}}
        )
    else:  # H = 2: both swarm references take H local steps per interaction
        config = make_config(**{"algorithm.local_steps": {"kind": "fixed", "value": 2}})
    result = reference.run(prepare(config), interactions=200, evaluations=2)
    assert result["wall_time"] > 0
    assert result["loss"] == result["loss"]  # finite, not NaN
    if module == "compiled_limit":
        assert 0 < result["loop_time"] <= result["wall_time"]


def test_swarm_references_learn_alike():
    """Same math: from the same start, both references reach about the same loss."""
    from benchmarks.reference import compiled_limit, swarm_logistic

    prepared = prepare(make_config(**{"init.identical": True}))
    start = swarm_logistic.run(prepared, interactions=1, evaluations=1)["loss"]
    a = swarm_logistic.run(prepared, interactions=3000, evaluations=1)["loss"]
    b = compiled_limit.run(prepared, interactions=3000, evaluations=1)["loss"]
    assert a < start and b < start
    assert abs(a - b) < 0.25 * (start - min(a, b))


def assert_phases_add_up(result) -> None:
    """The timer's parts of simulate() (numerics, metrics, build, event loop) sum to it."""
    profile = result["profile"]
    parts = (
        profile["numeric_kernels_s"]
        + profile["metrics_s"]
        + profile["build_s"]
        + profile["event_loop_s"]
    )
    assert parts == pytest.approx(result["wall_s"])


@pytest.mark.parametrize(
    "algorithm, engine",
    [
        ({"kind": "swarmsgd", "lr": 0.05}, "batched"),
        ({"kind": "adpsgd", "lr": 0.05}, "batched"),
        ({"kind": "dpsgd", "lr": 0.05}, "batched"),
        ({"kind": "sgp", "lr": 0.05}, "sequential"),
    ],
)
def test_phase_timer_splits_simulate(algorithm, engine):
    originals = (
        BatchedExecutor.apply_log,
        SequentialExecutor.submit,
        Simulation.record,
    )
    config = validate_data(tiny(algorithm=algorithm, engine={"executor": engine}))
    result, _ = bench._simulate(config, phases=True)
    profile = result["profile"]
    assert profile["applications"] > 0 and profile["numeric_kernels_s"] > 0
    assert profile["metrics_s"] > 0 and profile["build_s"] > 0
    assert_phases_add_up(result)
    assert profile["event_loop_only_fraction"] <= profile["event_loop_fraction"]
    # The patches are gone after the run.
    assert (BatchedExecutor.apply_log, SequentialExecutor.submit, Simulation.record) == originals


def test_phase_timer_does_not_import_gradient_coding_into_a_timed_run():
    """The timer starts inside the timed window: importing gradient coding's protocol there
    (numba kernels, scipy) would be counted as the event loop of every other workload."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from benchmarks import run as bench\n"
        "with bench.PhaseTimer():\n"
        "    pass\n"
        "print('gossipsim.algorithms.coding.protocol' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=bench.HERE.parent,
    )
    assert done.stdout.strip() == "False"


def test_phase_timer_counts_gradient_codings_numerics():
    """Gradient coding does its numerics in its own protocol, not through the executor: the
    timer counts its iteration numerics and PS steps (twice per iteration) as numerics, and
    the counters' stamping that reading a row triggers as event loop, not metrics."""
    from gossipsim.algorithms import ALGORITHMS

    if "gradient_coding" not in ALGORITHMS:
        pytest.skip("gradient coding is not in the package yet")
    from gossipsim.algorithms.coding.protocol import GradientCoding

    originals = (GradientCoding.iteration_numerics, GradientCoding.step, GradientCoding.stamp)
    data = tiny(
        algorithm={"kind": "gradient_coding", "workers": 4, "load": 2, "lr": 0.5},
        stop={"iterations": 5},
    )
    del data["topology"]  # the PS star of the workers
    config = validate_data(data)
    prepared = prepare(config)
    timer = bench.PhaseTimer()
    with timer:
        _, sim = simulate(prepared)
    assert sim.iterations == 5
    assert timer.coding_calls == 2 * 5 and timer.applied == 0
    assert timer.numeric > 0 and timer.bookkeeping > 0 and timer.metrics > 0
    # The patches are gone after the run.
    assert (
        GradientCoding.iteration_numerics,
        GradientCoding.step,
        GradientCoding.stamp,
    ) == originals
    result, _ = bench._simulate(config, phases=True)
    profile = result["profile"]
    assert profile["numeric_kernels_s"] > 0 and profile["applications"] == 0
    assert_phases_add_up(result)


def test_run_simulation_tiny_spec():
    spec = {
        "kind": "simulation",
        "unit": "node_steps",
        "config": tiny(
            algorithm={
                "kind": "local_sgd",
                "lr": 0.05,
                "local_steps": {"kind": "fixed", "value": 2},
            },
            stop={"iterations": 3},
        ),
    }
    spec["config"]["engine"] = {"executor": "batched"}
    result = bench.run_simulation("tiny", spec, quick=False)
    assert result["status"] == "ok" and result["unit"] == "node_steps"
    assert result["node_steps"] == 3 * 2 * SMALL["topology"]["n"]  # rounds x H x n
    assert result["rate_per_s"] > 0 and "profile" in result


def test_cli_probe_measures_a_run():
    run = bench.cli_run(tiny(), phases=True)
    assert run["status"] == "ok", run.get("error")
    assert run["interactions"] >= 60 and run["records"] >= 1
    assert run["fixed_cost_s"] > 0 and run["process_wall_s"] > run["simulate_s"]
    assert set(run["fixed_parts_s"]) >= {"imports", "prepare_data_and_graph", "write_results"}
    assert "event_loop_fraction" in run["profile"] and run["peak_memory_mib"] > 0


def test_failures_are_reported_not_raised():
    broken = tiny(topology={"kind": "random_regular", "n": 5, "degree": 3})  # n * d odd
    run = bench.cli_run(broken)
    assert run["status"] == "error" and run["error"]
    result = bench.run_workload("no-such-workload", quick=True)
    assert result["status"] == "error" and "no-such-workload" in result["error"]


def test_targets_and_table():
    results = {
        "swarm-1k": {
            "status": "ok",
            "unit": "interactions",
            "wall_s": 1.0,
            "rate_per_s": 100_000.0,
            "peak_memory_mib": 900.0,
            "reference": {"wall_s": 4.0},
            "speedup_vs_reference": 4.0,
            "ratio_to_compiled_limit": 0.5,
            "fixed_cost_s": 0.8,
            "fixed_cost_with_first_use_s": 1.2,
            "process_wall_s": 1.8,
            "profile": {"event_loop_fraction": 0.3},
            "scaling": {"interactions": {"time_ratio": 9.5}, "nodes": {"time_ratio": 2.5}},
        },
        "dpsgd-1k": {
            "status": "ok",
            "unit": "node_steps",
            "wall_s": 1.0,
            "rate_per_s": 60_000.0,
            "peak_memory_mib": 500.0,
            "profile": {"event_loop_fraction": 0.1},
        },
        "swarm-100k": {
            "status": "ok",
            "unit": "interactions",
            "wall_s": 100.0,
            "process_wall_s": 700.0,
            "rate_per_s": 100_000.0,
            "peak_memory_mib": 3000.0,
        },
        "cli-swarm-1m": {
            "status": "ok",
            "unit": "interactions",
            "wall_s": 10.0,
            "rate_per_s": 100_000.0,
            "peak_memory_mib": 400.0,
            "speedup_vs_reference": 3.5,
            "cli": {"simulate_s": 8.0, "process_wall_s": 10.0, "fixed_cost_s": 2.0},
        },
        "gc-100": {"status": "pending", "reason": "not yet"},
        "sgp-1k": {"status": "error", "error": "boom"},
    }
    checks = {c["target"]: c["met"] for c in bench.targets(results)}
    assert checks["swarm-1k: simulate() >= 0.8x the compiled limit"] is False
    assert checks["swarm-1k: >= 3x the interactions/s of the numpy reference"] is True
    assert checks["swarm-1k: fixed cost of a CLI run <= 1.0 s"] is True
    assert checks["swarm-1k: event-loop share of simulate() < 25%"] is False
    assert checks["dpsgd-1k: event-loop share of simulate() < 25%"] is True
    assert checks["dpsgd-1k: >= 0.5x swarm-1k's rate (node_steps/s)"] is True
    assert checks["10x interactions costs <= 11x time"] is True
    assert checks["10x nodes at fixed interactions costs <= 2x time"] is False
    assert checks["swarm-100k: under 10 minutes (whole process)"] is False
    assert checks["swarm-100k: peak memory under 4 GiB"] is True
    assert (
        checks["CLI, no engine section, swarm-1k at 1M interactions: whole process >= 3x numpy"]
        is True
    )
    assert checks["gc-100: runs"] is None and checks["sgp-1k: runs"] is False
    text = bench.table(results)
    assert "| swarm-1k | 1.00 |" in text and "4.00x" in text and "0.50x" in text
    assert "| dpsgd-1k | 1.00 | 60,000 node-steps/s | 0.60x |" in text
    assert "pending" in text and "error: boom" in text
    assert "0.80 (1.20)" in text  # fixed cost, and with the first use of the kernels


def test_skip_long_leaves_out_long_workloads():
    long = [name for name in bench.ORDER if bench.load_spec(name).get("long")]
    assert "swarm-100k" in long


def test_machine_facts():
    facts = bench.machine()
    assert facts["numpy"] and facts["python"]
    assert isinstance(facts["blas"], list)
    assert all(key.startswith("OPENBLAS_") for key in facts["openblas_env"])


def test_workload_files_are_yaml():
    for path in bench.WORKLOADS.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["kind"]
