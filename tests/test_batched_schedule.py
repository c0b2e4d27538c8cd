"""The lean event loop replays SimPy exactly: same operations, same times, same order.

Every gossip algorithm runs under SimPy (the reference) and under the lean loop (SwarmSGD
through its compiled kernel and through its Python fast path, the others through their
own generators), with an executor that records each operation and the time it was
submitted. Ties are provoked on purpose: constant compute times make many events share an
instant, zero message time makes lock hand-offs happen at one instant, and the stop rules
end runs mid-instant.
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.algorithms import get_algorithm
from gossipsim.algorithms.gossip import swarmsgd_compiled
from gossipsim.algorithms.gossip.swarmsgd_compiled import EVENTS, SwarmKernel
from gossipsim.engine.executor import Mix, SequentialExecutor
from gossipsim.engine.simulation import Simulation
from gossipsim.runner import build_simulation, prepare
from tests.conftest import make_config


class RecordingExecutor(SequentialExecutor):
    """Applies operations sequentially and remembers ``(time, operation)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[float, object]] = []
        self.sim: Simulation | None = None

    def submit(self, op) -> None:
        assert self.sim is not None
        # A mixing matrix is compared by content (sparse == is elementwise).
        key = ("Mix", op.weights.toarray().tobytes()) if isinstance(op, Mix) else op
        self.log.append((self.sim.env.now, key))
        super().submit(op)


def schedule_of(config, lean: bool, compiled: bool = True):
    sim = build_simulation(
        prepare(config), executor_class=RecordingExecutor, lean=lean, compiled=compiled
    )
    executor = sim.executor
    algorithm = config.algorithm
    executor.sim = sim
    outcome = sim.run(get_algorithm(algorithm.kind))
    facts = (sim.interactions, sim.local_steps, sim.samples, sim.idle_time, outcome.stop_reason)
    return executor.log, outcome.rows, facts, sim.models


SWARM = [
    {},
    {"nonblocking": True},
    {"local_steps": {"kind": "geometric", "mean": 3}},
    {"nonblocking": True, "local_steps": {"kind": "geometric", "mean": 2}},
]
TIMING = {
    "exponential": {"compute": {"kind": "exponential", "mean": 1.0}},
    "constant-ties": {
        "compute": {"kind": "constant", "mean": 1.0},
        "network": {"latency": 0.5, "bandwidth": 1.0e12},
        "record": {"every": 1.0},
    },
    "zero-message-time": {
        "compute": {"kind": "constant", "mean": 0.5},
        "network": {"latency": 0.0, "bandwidth": float("inf")},
    },
    "lognormal-stragglers": {
        "compute": {
            "kind": "lognormal",
            "mean": 1.0,
            "sigma": 0.5,
            "heterogeneity": {"kind": "lognormal", "sigma": 0.3},
            "stragglers": {"fraction": 0.25, "slowdown": 4.0, "mode": "transient"},
        }
    },
    "pareto-epochs": {"compute": {"kind": "pareto", "mean": 1.0}, "stop": {"epochs": 2.0}},
    "shifted-interactions": {
        "compute": {"kind": "shifted_exponential", "mean": 1.0, "shift": 0.5},
        "stop": {"interactions": 137},
    },
}


def _check_same(config, compiled: bool = True):
    reference = schedule_of(config, lean=False)
    lean = schedule_of(config, lean=True, compiled=compiled)
    assert lean[0] == reference[0]  # operations, their times and their order
    assert lean[1] == reference[1]  # recorded rows
    assert lean[2] == reference[2]
    assert (lean[3] == reference[3]).all()
    return lean


@pytest.mark.parametrize("path", ["compiled", "python"])
@pytest.mark.parametrize("timing", sorted(TIMING))
@pytest.mark.parametrize(
    "extra", SWARM, ids=["blocking", "nonblocking", "blocking-H", "nonblocking-H"]
)
def test_swarmsgd_fast_paths_replay_simpy(timing, extra, path):
    overrides = {"algorithm": {"kind": "swarmsgd", "lr": 0.05, **extra}, **TIMING[timing]}
    _check_same(make_config(**overrides), compiled=path == "compiled")


def _kernel_of(config, **kwargs):
    sim = build_simulation(prepare(config), **kwargs)
    sim.run(get_algorithm("swarmsgd"))
    return sim


def test_compiled_kernel_runs_supported_configs():
    """SwarmSGD's batched runs take the compiled loop (transient stragglers do not)."""
    batched = {"engine": {"executor": "batched"}}
    sim = _kernel_of(make_config(**batched))
    assert isinstance(sim.env.kernel, SwarmKernel)
    assert sim.env.kernel.I[EVENTS] > 8 * sim.interactions
    transient = make_config(**batched, **TIMING["lognormal-stragglers"])
    assert _kernel_of(transient).env.kernel is None
    assert _kernel_of(make_config(**batched), compiled=False).env.kernel is None


@pytest.mark.parametrize("nonblocking", [False, True])
def test_compiled_refills_and_grows(monkeypatch, nonblocking):
    """Blocks of draws run out many times, H exceeds a block, and the queues start tiny."""
    monkeypatch.setattr(swarmsgd_compiled, "SPARE", 0)
    many = {
        "topology": {"kind": "ring", "n": 4},
        "algorithm": {"kind": "swarmsgd", "lr": 0.05, "nonblocking": nonblocking},
        "compute": {"kind": "exponential", "mean": 0.1},
        "stop": {"interactions": 1500},
        "record": {"every": 10.0},
    }
    _check_same(make_config(**many))
    long_steps = {**many, "stop": {"interactions": 12}}
    long_steps["algorithm"] = {**many["algorithm"], "local_steps": {"kind": "fixed", "value": 700}}
    _check_same(make_config(**long_steps))
    geometric = {**many, "stop": {"interactions": 40}}
    geometric["algorithm"] = {
        **many["algorithm"],
        "local_steps": {"kind": "geometric", "mean": 150},
    }
    _check_same(make_config(**geometric))


def test_pairwise_sum_is_numpy_sum():
    """Durations of H steps add draws in numpy's pairwise order, to the last bit."""
    rng = np.random.default_rng(5)
    for n in [*range(0, 300), 1000, 4097, 9001, 70001]:
        values = rng.exponential(1.3, size=n) * 0.7
        assert swarmsgd_compiled.pairwise_sum(values) == float(values.sum())


@pytest.mark.parametrize("kind", ["dpsgd", "adpsgd", "sgp", "allreduce", "local_sgd"])
@pytest.mark.parametrize("timing", ["exponential", "constant-ties", "shifted-interactions"])
def test_generator_processes_on_lean_loop_replay_simpy(kind, timing):
    overrides = {"algorithm": {"kind": kind, "lr": 0.05}, **TIMING[timing]}
    _check_same(make_config(**overrides))


def test_ties_really_happen():
    """The constant-time config does put several operations on one instant."""
    config = make_config(
        **{"algorithm": {"kind": "swarmsgd", "lr": 0.05}, **TIMING["constant-ties"]}
    )
    log = schedule_of(config, lean=True)[0]
    times = [t for t, _ in log]
    assert len(set(times)) < 0.5 * len(times)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_kernel_matches_simpy_on_random_tie_heavy_configs(seed):
    """Random small configs built to make events share instants and stops coincide."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.choice([3, 4, 6, 9]))
        compute = [
            {"kind": "constant", "mean": float(rng.choice([0.25, 0.5, 1.0]))},
            {"kind": "exponential", "mean": 1.0},
            {"kind": "constant", "mean": 1.0, "heterogeneity": {"kind": "uniform", "low": 1.0,
                                                                 "high": 2.0}},
        ][int(rng.integers(3))]  # fmt: skip
        local_steps = [
            {"kind": "fixed", "value": int(rng.integers(1, 4))},
            {"kind": "geometric", "mean": float(rng.choice([1.5, 4.0]))},
        ][int(rng.integers(2))]
        stop = {"time": float(rng.choice([2.0, 4.0, 6.0]))}
        if rng.random() < 0.5:
            stop["interactions"] = int(rng.integers(1, 30))
        if rng.random() < 0.5:
            stop["epochs"] = float(rng.uniform(0.001, 0.05))
        config = make_config(
            **{
                "topology": {"kind": str(rng.choice(["ring", "complete"])), "n": n},
                "compute": compute,
                "network": {"latency": float(rng.choice([0.0, 0.25, 0.5])), "bandwidth": 1e300},
                "algorithm": {
                    "kind": "swarmsgd",
                    "lr": 0.05,
                    "nonblocking": bool(rng.random() < 0.5),
                    "local_steps": local_steps,
                },
                "record": {"every": float(rng.choice([0.25, 0.5, 1.0]))},
                "stop": stop,
            }
        )
        _check_same(config)
