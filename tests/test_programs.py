"""Node programs, under both interpreters, replay the hand-written SimPy generators exactly.

The oracle (``tests/oracle/``) is the SimPy code each asynchronous algorithm was written as
before it became a node program. Every algorithm with a program runs three ways — the
oracle under SimPy, its program interpreted by SimPy processes, and its program in the
compiled loop — with an executor that records each operation and the time it was
submitted. All three must give the same operations at the same times in the same order
(ties included), the same recorded rows and the same counters: for every variant the
registry declares, every quantizer it accepts, every objective, every timing model, and
every fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gossipsim.algorithms import REGISTRY
from gossipsim.engine import compiled
from gossipsim.engine.batched import SequentialExecutor
from gossipsim.engine.compiled import EVENTS, ProgramKernel
from gossipsim.engine.executor import Mix, MixGradient
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.runner import build_simulation, prepare
from tests.conftest import make_config
from tests.oracle import adpsgd, sgp, swarmsgd

ORACLE = {"swarmsgd": swarmsgd.start, "adpsgd": adpsgd.start, "sgp": sgp.start}
PROGRAMS = sorted(kind for kind, entry in REGISTRY.items() if entry.program is not None)
TRACE = str(Path(__file__).resolve().parent / "data" / "trace_small.csv")


def test_every_program_has_an_oracle():
    assert set(PROGRAMS) == set(ORACLE)


class RecordingExecutor(SequentialExecutor):
    """Applies operations sequentially and remembers ``(time, operation)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[float, object]] = []
        self.sim: Simulation | None = None

    def submit(self, op) -> None:
        assert self.sim is not None
        key: object = op
        if isinstance(op, Mix):
            key = ("Mix", op.weights.toarray().tobytes())
        elif isinstance(op, MixGradient):
            key = ("MixGradient", op.weights.toarray().tobytes(), op.nodes)
        self.log.append((self.sim.env.now, key))
        super().submit(op)


def schedule_of(config, lean: bool, oracle: bool = False):
    sim = build_simulation(prepare(config), executor_class=RecordingExecutor, lean=lean)
    sim.executor.sim = sim
    entry = REGISTRY[config.algorithm.kind]
    outcome = sim.run(ORACLE[entry.kind] if oracle else entry.start)
    facts = (
        sim.interactions,
        sim.local_steps,
        sim.samples,
        sim.idle_time,
        sim.comm_time,
        outcome.stop_reason,
        sim.executor.counters,
    )
    return sim.executor.log, outcome.rows, facts, sim.models, sim


def check_same(config, compiled_too: bool = True):
    """Oracle == program under SimPy (== program compiled); returns the compiled run."""
    reference = schedule_of(config, lean=False, oracle=True)
    runs = [schedule_of(config, lean=False)]
    if compiled_too:
        runs.append(schedule_of(config, lean=True))
    for run in runs:
        assert run[0] == reference[0]  # operations, their times and their order
        assert repr(run[1]) == repr(reference[1])  # recorded rows (repr: NaN == NaN)
        assert run[2] == reference[2]  # counters
        assert (run[3] == reference[3]).all()
    return runs[-1]


def variants(kind: str) -> list[tuple[str, dict]]:
    return [("default", {})] + sorted(REGISTRY[kind].variants.items())


CASES = [
    pytest.param(kind, extra, id=f"{kind}-{name}")
    for kind in PROGRAMS
    for name, extra in variants(kind)
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
    "transient-stragglers": {
        "compute": {
            "kind": "lognormal",
            "mean": 1.0,
            "sigma": 0.5,
            "heterogeneity": {"kind": "lognormal", "sigma": 0.3},
            "stragglers": {"fraction": 0.25, "slowdown": 4.0, "mode": "transient"},
        }
    },
    "persistent-stragglers": {
        "compute": {
            "kind": "exponential",
            "mean": 1.0,
            "stragglers": {"fraction": 0.25, "slowdown": 4.0, "mode": "persistent"},
        }
    },
    "per-link": {  # every link its own latency and bandwidth (drawn per link)
        "compute": {"kind": "exponential", "mean": 1.0},
        "network": {
            "latency": {"kind": "lognormal", "mean": 0.3, "sigma": 1.0},
            "bandwidth": {"kind": "uniform", "low": 1.0e4, "high": 1.0e6},
        },
    },
    "pareto-epochs": {"compute": {"kind": "pareto", "mean": 1.0}, "stop": {"epochs": 2.0}},
    "shifted-interactions": {
        "compute": {"kind": "shifted_exponential", "mean": 1.0, "shift": 0.5},
        "stop": {"interactions": 137},
    },
    # A measured trace of 3 of the 12 nodes: the other 9 are mapped onto the traced ids.
    "trace-replay": {
        "compute": {
            "kind": "trace",
            "path": TRACE,
            "heterogeneity": {"kind": "lognormal", "sigma": 0.3},
            "stragglers": {"fraction": 0.25, "slowdown": 4.0, "mode": "persistent"},
        }
    },
    "trace-resample": {"compute": {"kind": "trace", "path": TRACE, "mode": "resample"}},
}


def config_for(kind: str, extra: dict, **overrides):
    return make_config(**{"algorithm": {"kind": kind, "lr": 0.05, **extra}, **overrides})


@pytest.mark.parametrize("timing", sorted(TIMING))
@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_programs_replay_the_oracle(kind, extra, timing):
    check_same(config_for(kind, extra, **TIMING[timing]))


QUANTIZERS = {
    "stochastic": {"kind": "stochastic", "bits": 6},
    "lattice": {"kind": "lattice", "bits": 8, "epsilon": 1.0e-3},
}
OBJECTIVES = {
    "least_squares": {"objective.kind": "least_squares"},
    "softmax": {
        "objective.kind": "softmax",
        "objective.dataset": {
            "kind": "synthetic",
            "n_samples": 600,
            "n_features": 5,
            "n_classes": 3,
        },
    },
    "mlp": {
        "objective.kind": "mlp",
        "objective.hidden": [6],
        "objective.dataset": {
            "kind": "synthetic",
            "n_samples": 600,
            "n_features": 5,
            "n_classes": 3,
        },
    },
}


@pytest.mark.parametrize(
    ("kind", "extra", "quantizer"),
    [
        pytest.param(kind, extra, q, id=f"{kind}-{name}-{q}")
        for kind in PROGRAMS
        for name, extra in variants(kind)
        for q in REGISTRY[kind].quantizers
        if q != "none"
    ],
)
def test_programs_replay_the_oracle_quantized(kind, extra, quantizer):
    check_same(config_for(kind, {**extra, "quantizer": QUANTIZERS[quantizer]}))


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_programs_replay_the_oracle_for_every_objective(kind, extra, objective):
    check_same(config_for(kind, extra, stop={"time": 8.0}, **OBJECTIVES[objective]))


FAULTS = {
    "crash": {"crash": {"nodes": [0, 5], "at": 6.0}},
    "crash-recover": {
        "crash_recover": {"rate": 0.05, "downtime": {"kind": "exponential", "mean": 3.0}}
    },
    "link-failure": {
        "link_failure": {"rate": 0.05, "downtime": {"kind": "exponential", "mean": 2.0}}
    },
    "partition": {"partition": {"groups": 2, "start": 4.0, "end": 12.0}},
    "message-loss": {"message_loss": 0.1},
    "latency-spikes": {"latency_spikes": {"probability": 0.1, "factor": 10.0}},
    "every-fault": {
        "crash": {"nodes": [3], "at": 10.0},
        "crash_recover": {"rate": 0.03, "downtime": {"kind": "exponential", "mean": 3.0}},
        "link_failure": {"rate": 0.02, "downtime": {"kind": "exponential", "mean": 2.0}},
        "partition": {"groups": 2, "start": 5.0, "end": 9.0},
        "message_loss": 0.05,
        "latency_spikes": {"probability": 0.05, "factor": 5.0},
    },
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_programs_replay_the_oracle_with_faults(kind, extra, fault):
    config = config_for(kind, extra, faults={**FAULTS[fault], "timeout": 0.3})
    run = check_same(config)
    assert isinstance(run[4].env.kernel, ProgramKernel)
    assert sum(run[4].faults.counts.values()) > 0  # the fault did happen


def test_compiled_loop_runs_fault_free_batched_configs():
    for kind in PROGRAMS:
        sim = build_simulation(prepare(config_for(kind, {})))
        sim.run(REGISTRY[kind].start)
        assert isinstance(sim.env.kernel, ProgramKernel)
        assert sim.env.kernel.I[EVENTS] > 2 * sim.interactions > 0


def test_ties_really_happen():
    """The constant-time config does put several operations on one instant."""
    log = schedule_of(config_for("swarmsgd", {}, **TIMING["constant-ties"]), lean=True)[0]
    times = [t for t, _ in log]
    assert len(set(times)) < 0.5 * len(times)


@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_compiled_refills_and_grows(monkeypatch, kind, extra):
    """Blocks of draws run out many times, H exceeds a block, and the queues start tiny."""
    monkeypatch.setattr(compiled, "SPARE", 0)
    many = {
        "topology": {"kind": "ring", "n": 4},
        "compute": {"kind": "exponential", "mean": 0.1},
        "network": {"latency": 0.3, "bandwidth": 1.0e6},
        "stop": {"interactions": 1500},
        "record": {"every": 10.0},
    }
    check_same(config_for(kind, extra, **many))
    if kind == "swarmsgd":
        for local_steps in ({"kind": "fixed", "value": 700}, {"kind": "geometric", "mean": 150}):
            long = {**many, "stop": {"interactions": 30}}
            check_same(config_for(kind, {**extra, "local_steps": local_steps}, **long))


def test_pairwise_sum_is_numpy_sum():
    """Durations of H steps add draws in numpy's pairwise order, to the last bit."""
    rng = np.random.default_rng(5)
    for n in [*range(0, 300), 1000, 4097, 9001, 70001]:
        values = rng.exponential(1.3, size=n) * 0.7
        assert compiled.pairwise_sum(values) == float(values.sum())


@pytest.mark.parametrize("seed", range(4))
def test_compiled_loop_matches_the_oracle_on_random_tie_heavy_configs(seed):
    """Random small configs built to make events share instants and stops coincide."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        kind = str(rng.choice(PROGRAMS))
        n = int(rng.choice([3, 4, 6, 9]))
        compute = [
            {"kind": "constant", "mean": float(rng.choice([0.25, 0.5, 1.0]))},
            {"kind": "exponential", "mean": 1.0},
            {"kind": "constant", "mean": 1.0, "heterogeneity": {"kind": "uniform", "low": 1.0,
                                                                 "high": 2.0}},
        ][int(rng.integers(3))]  # fmt: skip
        extra: dict = {}
        if kind == "swarmsgd":
            extra["nonblocking"] = bool(rng.random() < 0.5)
            extra["local_steps"] = [
                {"kind": "fixed", "value": int(rng.integers(1, 4))},
                {"kind": "geometric", "mean": float(rng.choice([1.5, 4.0]))},
            ][int(rng.integers(2))]
        stop = {"time": float(rng.choice([2.0, 4.0, 6.0]))}
        if rng.random() < 0.5:
            stop["interactions"] = int(rng.integers(1, 30))
        if rng.random() < 0.5:
            stop["epochs"] = float(rng.uniform(0.001, 0.05))
        config = config_for(
            kind,
            extra,
            topology={"kind": str(rng.choice(["ring", "complete"])), "n": n},
            compute=compute,
            network={"latency": float(rng.choice([0.0, 0.25, 0.5])), "bandwidth": 1e300},
            record={"every": float(rng.choice([0.25, 0.5, 1.0]))},
            stop=stop,
        )
        reference = schedule_of(config, lean=False, oracle=True)
        fast = schedule_of(config, lean=True)
        assert fast[0] == reference[0] and fast[2] == reference[2]
        assert repr(fast[1]) == repr(reference[1])
