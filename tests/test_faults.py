"""Faults inside the simulated system: crashes, partitions, lost messages, synchronous policies."""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.algorithms import ALGORITHMS
from gossipsim.experiment.config import ConfigError
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.system.faults import COUNTERS
from tests.conftest import make_config

GOSSIP = sorted(k for k in ALGORITHMS if k != "gradient_coding")

EVERY_FAULT = {
    "crash": {"nodes": [0, 5], "at": 30.0},
    "crash_recover": {"rate": 0.02, "downtime": {"kind": "exponential", "mean": 10.0}},
    "link_failure": {"rate": 0.01, "downtime": {"kind": "exponential", "mean": 5.0}},
    "partition": {"groups": 2, "start": 40.0, "end": 70.0},
    "message_loss": 0.05,
    "latency_spikes": {"probability": 0.05, "factor": 10.0},
}


def run(**overrides):
    prepared = prepare(make_config(**overrides))
    return prepared, *simulate(prepared)


def initial(prepared):
    n = prepared.config.topology.n
    generator = prepared.streams.generator
    objective = prepared.problem.objective
    return np.stack([objective.init_params(generator("init", i), 1.0) for i in range(n)])


@pytest.mark.parametrize("kind", GOSSIP)
def test_crashed_node_model_stops_changing(kind):
    algorithm = {"kind": kind, "lr": 0.05}
    faults = {"crash": {"nodes": [2], "at": 15.0}}
    _, early, sim_early = run(algorithm=algorithm, faults=faults, stop={"time": 20.0})
    _, late, sim_late = run(algorithm=algorithm, faults=faults, stop={"time": 60.0})
    np.testing.assert_array_equal(sim_early.models[2], sim_late.models[2])
    # ... while the others keep training.
    assert not np.array_equal(sim_early.models[3], sim_late.models[3])
    assert late.rows[-1]["crashes"] == 1 and late.rows[-1]["nodes_down"] == 1


@pytest.mark.parametrize("kind", ["swarmsgd", "adpsgd", "dpsgd"])
def test_survivors_converge_on_connected_remainder(kind):
    prepared, outcome, sim = run(
        algorithm={"kind": kind, "lr": 0.0},
        topology={"kind": "ring", "n": 12},
        faults={"crash": {"nodes": [0, 1], "at": 0.0}},
        stop={"time": 400.0},
        **{"init.identical": False},
    )
    survivors = np.arange(2, 12)
    start = initial(prepared)
    models = sim.models[survivors]
    np.testing.assert_allclose(models.mean(axis=0), start[survivors].mean(axis=0), atol=1e-12)
    spread = ((models - models.mean(axis=0)) ** 2).sum(axis=1).mean()
    initial_spread = ((start[survivors] - start[survivors].mean(axis=0)) ** 2).sum(axis=1).mean()
    assert spread < 1e-4 * initial_spread
    np.testing.assert_array_equal(sim.models[:2], start[:2])
    assert outcome.rows[-1]["timeouts"] > 0


@pytest.mark.parametrize("nonblocking", [False, True])
def test_partition_sides_converge_to_their_means_then_to_the_global_one(nonblocking):
    common = {
        "algorithm": {"kind": "swarmsgd", "lr": 0.0, "nonblocking": nonblocking},
        "topology": {"kind": "ring", "n": 16},
        "faults": {"partition": {"groups": 2, "start": 0.0, "end": 500.0}},
        "init.identical": False,
    }
    prepared, _, split = run(stop={"time": 500.0}, **common)
    start = initial(prepared)
    sides = [np.arange(0, 8), np.arange(8, 16)]
    for side in sides:
        models = split.models[side]
        if not nonblocking:  # non-blocking keeps pending buffer deltas: means hold only with them
            np.testing.assert_allclose(models.mean(axis=0), start[side].mean(axis=0), atol=1e-12)
        assert ((models - models.mean(axis=0)) ** 2).sum(axis=1).mean() < 1e-3
    gap = np.abs(split.models[sides[0]].mean(axis=0) - split.models[sides[1]].mean(axis=0)).max()
    assert gap > 0.05
    _, outcome, healed = run(stop={"time": 1500.0}, **common)
    models = healed.models
    assert ((models - models.mean(axis=0)) ** 2).sum(axis=1).mean() < 1e-3
    if not nonblocking:
        np.testing.assert_allclose(models.mean(axis=0), start.mean(axis=0), atol=1e-12)
    assert outcome.rows[-1]["timeouts"] > 0


def test_push_sum_stays_consistent_under_loss_and_crashes():
    _, outcome, sim = run(
        algorithm={"kind": "sgp", "lr": 0.0},
        faults={
            "message_loss": 0.3,
            "crash_recover": {"rate": 0.05, "downtime": {"kind": "constant", "mean": 5.0}},
        },
        stop={"time": 100.0},
        **{"init.identical": False},
    )
    numerator, weight = sim.executor.push_sum_totals()
    assert weight == pytest.approx(12, abs=1e-12)
    assert outcome.rows[-1]["messages_lost"] > 10 and outcome.rows[-1]["crashes"] > 0


def test_synchronous_policies_wait_or_time_out():
    faults = {"crash": {"nodes": [3], "at": 10.0}, "sync": "wait"}
    _, waiting, _ = run(algorithm={"kind": "dpsgd", "lr": 0.05}, faults=faults, stop={"time": 60.0})
    rows = waiting.rows
    stalled_at = next(r["interactions"] for r in rows if r["time"] >= 12.0)
    assert rows[-1]["interactions"] == stalled_at  # the round never completes again
    assert rows[-1]["stalled_rounds"] == 1
    faults["sync"] = "timeout"
    _, going_on, _ = run(
        algorithm={"kind": "dpsgd", "lr": 0.05}, faults=faults, stop={"time": 60.0}
    )
    assert going_on.rows[-1]["interactions"] > 2 * stalled_at
    assert going_on.rows[-1]["timeouts"] > 0


@pytest.mark.parametrize("kind", GOSSIP)
def test_every_fault_at_once_is_deterministic_and_counted(kind):
    overrides = {
        "algorithm": {"kind": kind, "lr": 0.05},
        "faults": EVERY_FAULT,
        "stop": {"time": 100.0},
    }
    _, first, _ = run(**overrides)
    _, second, _ = run(**overrides)
    assert first.rows == second.rows
    last = first.rows[-1]
    assert set(COUNTERS) <= set(last)
    assert last["crashes"] >= 2 and last["link_failures"] > 0 and last["messages_lost"] > 0
    assert first.status == "complete"


def test_fault_free_runs_are_unchanged_by_the_faults_section():
    _, plain, _ = run()
    _, empty, _ = run(faults={"message_loss": 0.0, "timeout": 3.0})
    assert plain.rows == empty.rows


def test_bad_fault_configs_are_named():
    with pytest.raises(ConfigError, match=r"faults.crash.nodes: node 99 does not exist"):
        run(faults={"crash": {"nodes": [99]}})
    with pytest.raises(ConfigError, match=r"faults.message_loss"):
        make_config(faults={"message_loss": 1.5})
    with pytest.raises(ConfigError, match=r"faults.partition: .*end .* must be after start"):
        make_config(faults={"partition": {"start": 10.0, "end": 5.0}})


@pytest.mark.parametrize("scheme", ["partial", "cr", "fr", "uncoded"])
def test_gradient_coding_worker_crash_is_a_full_straggler(scheme):
    config = make_config(
        objective={"kind": "least_squares", "dataset": {"kind": "synthetic", "n_samples": 1200}},
        algorithm={"kind": "gradient_coding", "scheme": scheme, "workers": 6, "load": 3},
        faults={"crash": {"nodes": [0], "at": 5.0}},
        stop={"iterations": 20, "time": 500.0},
    )
    outcome, _ = simulate(prepare(config))
    last = outcome.rows[-1]
    if scheme == "uncoded":  # waits for every worker: the iteration never completes
        assert outcome.stop_reason == "time" and last["iteration"] < 20
    else:  # one crashed worker is within the s = 2 stragglers the code tolerates
        assert outcome.stop_reason == "iterations"
        assert last["decode_error"] < 1e-8


def test_a_run_that_can_never_finish_stops_as_stalled():
    # The hub of a star crashes: no leaf can reach anyone, so 500 interactions never happen.
    _, outcome, _ = run(
        topology={"kind": "star", "n": 6},
        faults={"crash": {"nodes": [0], "at": 1.0}},
        stop={"interactions": 500},
    )
    assert outcome.stop_reason == "stalled"
    assert outcome.rows[-1]["interactions"] < 500


@pytest.mark.parametrize("kind", ["allreduce", "local_sgd"])
@pytest.mark.parametrize(
    ("crashed", "groups"),
    [
        ([], [12]),  # no faults: one ring all-reduce over all 12 nodes
        ([3], [11]),  # the ring minus node 3 is one path of 11 nodes
        ([0, 6], [5, 5]),  # the ring cut in two: 1..5 and 7..11
    ],
)
def test_synchronous_rounds_count_one_ring_allreduce_per_reachable_group(kind, crashed, groups):
    """Each round counts the ring all-reduces over the groups of members that can reach
    each other — 2(m−1)·m messages and 2(m−1)·d·float_bits bits for a group of m — and
    nothing else (the averaging inside the groups is that all-reduce, not a gossip round)."""
    float_bits, rounds = 32, 6
    overrides = {
        "algorithm": {"kind": kind, "lr": 0.05},
        "topology": {"kind": "ring", "n": 12},
        "network": {"latency": 0.01, "bandwidth": 1.0e6, "float_bits": float_bits},
        "stop": {"iterations": rounds},
    }
    if crashed:
        overrides["faults"] = {"crash": {"nodes": crashed, "at": 0.0}}
    _, outcome, sim = run(**overrides)
    assert outcome.stop_reason == "iterations"
    d = sim.models.shape[1]
    last = outcome.rows[-1]
    assert last["messages"] == rounds * sum(2 * (m - 1) * m for m in groups)
    assert last["bits"] == rounds * sum(2 * (m - 1) * d * float_bits for m in groups)
    assert last["interactions"] == rounds * sum(groups)
