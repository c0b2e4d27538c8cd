"""SGP's peer schedules and bounded staleness (``algorithm.peers``, ``algorithm.overlap``).

* ``overlap: 0`` is synchronous push-sum: at lr = 0 the numerators and weights after K
  steps are ``P_{K-1} … P_0`` applied to the initial ones, P_k the column-stochastic matrix
  of step k's pushes, for both peer schedules (and ``unbounded`` is not, with messages
  slower than a step).
* On a heterogeneous cluster with constant times, every node starts step k+1 exactly when
  it has both finished step k and received every message of steps ≤ k − overlap: it never
  runs further ahead, and never waits longer.
* ``peers: topology`` pushes along the configured graph's edges, cycling through each
  node's sorted neighbours.
* With faults, waits end after the fault timeout: a crashed in-peer or lost pushes never
  stall the others.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from gossipsim.algorithms import REGISTRY
from gossipsim.algorithms.gossip import sgp
from gossipsim.engine import compiled
from gossipsim.engine.executor import PushReceive, PushSend, PushSumStep
from gossipsim.engine.program import AWAIT_MESSAGES, NAMES
from gossipsim.experiment.runner import build_simulation, prepare
from tests.conftest import make_config
from tests.test_programs import check_same, schedule_of


def sgp_config(**algorithm) -> dict:
    return {"algorithm": {"kind": "sgp", "lr": 0.05, **algorithm}}


def peer(peers: str, neighbours: list[np.ndarray], i: int, k: int) -> int:
    n = len(neighbours)
    if peers == "exponential":
        return (i + 2 ** (k % max(1, int(np.ceil(np.log2(n)))))) % n
    return int(neighbours[i][k % len(neighbours[i])])


@pytest.mark.parametrize("executor", ["sequential", "batched"])
@pytest.mark.parametrize(
    ("peers", "topology"),
    [
        ("exponential", {"kind": "random_regular", "n": 6, "degree": 3}),
        # Lockstep needs one push into every node at every step; with topology peers only
        # K_2 has that (elsewhere a node owed nothing at a step goes on at once).
        ("topology", {"kind": "complete", "n": 2}),
    ],
)
def test_synchronous_sgp_is_the_matrix_product(peers, topology, executor):
    steps, latency = 5, 2.5  # messages take longer than a step's computation
    overrides = {
        **sgp_config(lr=0.0, peers=peers, overlap=0),
        "topology": topology,
        "compute": {"kind": "constant", "mean": 1.0},
        "network": {"latency": latency, "bandwidth": 1.0e15},
        "engine": {"executor": executor},
        # Step k ends at 1 + 3.5 k, its messages arrive at 3.5 (k + 1): stop mid-step.
        "stop": {"time": 3.5 * steps + 0.5},
        "record": {"every": 1.0},
    }
    config = make_config(**overrides)
    sim = build_simulation(prepare(config))
    x = sim.models.copy()
    n = sim.n
    w = np.ones(n)
    sim.run(REGISTRY["sgp"].start)
    for k in range(steps):
        P = np.zeros((n, n))
        for j in range(n):
            P[j, j] += 0.5
            P[peer(peers, sim.neighbours, j, k), j] += 0.5
        assert np.allclose(P.sum(axis=0), 1.0)
        x, w = P @ x, P @ w
    assert sim.local_steps == n * steps  # step `steps` is being computed
    np.testing.assert_allclose(sim.executor.weights, w, rtol=1e-14)
    np.testing.assert_allclose(sim.executor.numerators, x, rtol=1e-12, atol=1e-14)
    # Each node waited one message time after each of its `steps` pushes.
    message_time = sim.comm_time / (n * steps)
    assert sim.idle_time == pytest.approx(n * steps * message_time, rel=1e-12)

    # Without waiting, a step mixes in what has arrived by then: not the product.
    config.algorithm.overlap = "unbounded"
    unbounded = build_simulation(prepare(config))
    unbounded.run(REGISTRY["sgp"].start)
    assert unbounded.idle_time == 0.0
    assert not np.allclose(unbounded.executor.weights, w)


def starts_and_requirements(config):
    """Per node and step: (start, end of the previous step, arrivals it depends on)."""
    log, _, _, _, sim = schedule_of(config, lean=True)
    ends: dict[int, list[float]] = defaultdict(list)
    sent: dict[int, tuple[int, int]] = {}  # message → (receiver, sender's step)
    arrivals: dict[int, list[tuple[int, float]]] = defaultdict(list)  # receiver → (step, time)
    for time, op in log:
        if isinstance(op, PushSumStep):
            ends[op.node].append(time)
        elif isinstance(op, PushSend):
            sent[op.message] = (op.j, len(ends[op.i]) - 1)
        elif isinstance(op, PushReceive):
            receiver, step = sent[op.message]
            arrivals[receiver].append((step, time))
    return sim, ends, arrivals, sent


@pytest.mark.parametrize("overlap", [0, 1])
@pytest.mark.parametrize("peers", ["exponential", "topology"])
def test_a_node_runs_at_most_overlap_steps_ahead(peers, overlap):
    config = make_config(
        **sgp_config(peers=peers, overlap=overlap),
        topology={"kind": "random_regular", "n": 8, "degree": 3},
        compute={"kind": "constant", "mean": 1.0,
                 "heterogeneity": {"kind": "uniform", "low": 1.0, "high": 4.0}},
        network={"latency": 0.7, "bandwidth": 1.0e15},
        stop={"time": 60.0},
    )  # fmt: skip
    sim, ends, arrivals, _ = starts_and_requirements(config)
    factors = np.asarray(sim.compute.factors)
    assert factors.max() > 2.0 * factors.min()  # really heterogeneous
    ran_ahead = 0  # steps started before a message of the step just before had arrived
    for i in range(sim.n):
        duration = 1.0 * factors[i]
        assert len(ends[i]) > 5
        for k in range(1, len(ends[i])):
            start = ends[i][k] - duration
            needed = [t for s, t in arrivals[i] if s <= k - 1 - overlap]
            owed = sum(peer(peers, sim.neighbours, j, s) == i
                       for j in range(sim.n) for s in range(k - overlap))  # fmt: skip
            assert len(needed) == owed  # all arrived before the start ...
            # ... and the node started as soon as it had them and had finished step k - 1.
            assert start == pytest.approx(max([ends[i][k - 1], *needed]), abs=1e-9)
            ran_ahead += any(s == k - 1 and t > start + 1e-9 for s, t in arrivals[i])
    assert (ran_ahead > 0) == (overlap == 1)


@pytest.mark.parametrize("overlap", [0, "unbounded"])
def test_topology_peers_cycle_through_the_sorted_neighbours(overlap):
    config = make_config(**sgp_config(peers="topology", overlap=overlap), stop={"time": 15.0})
    log, _, _, _, sim = schedule_of(config, lean=True)
    pushes: dict[int, list[int]] = defaultdict(list)
    for _, op in log:
        if isinstance(op, PushSend):
            pushes[op.i].append(op.j)
    edges = {tuple(sorted(e)) for e in sim.graph.edges()}
    for i in range(sim.n):
        table = sorted(sim.neighbours[i].tolist())
        assert len(pushes[i]) > len(table)
        assert pushes[i] == [table[k % len(table)] for k in range(len(pushes[i]))]
        assert all(tuple(sorted((i, j))) in edges for j in pushes[i])


def test_unbounded_is_the_program_without_waits():
    """``overlap: unbounded`` keeps the program SGP had before waits existed."""
    unbounded = sgp.node(0.1, "exponential", "unbounded").resolve(faults=False)
    names = [NAMES[op] for op in unbounded.op.tolist()]
    assert names == ["SET_STEPS", "COMPUTE", "LOG", "COUNT_STEPS", "PICK_EXPONENTIAL_PEER",
                     "ADD_COMM", "SEND", "NEXT_ITERATION", "JUMP"]  # fmt: skip
    for overlap in (0, 1):
        bounded = sgp.node(0.1, "topology", overlap).resolve(faults=False)
        assert AWAIT_MESSAGES in bounded.op.tolist()
        assert int(bounded.arg[bounded.op.tolist().index(AWAIT_MESSAGES)]) == overlap


@pytest.mark.parametrize("overlap", [0, 1])
@pytest.mark.parametrize(
    "fault",
    [
        {"crash": {"nodes": [2], "at": 4.0}},
        {"message_loss": 0.2},
        {"partition": {"groups": 2, "start": 3.0}},
    ],
    ids=["crash", "message-loss", "partition"],
)
def test_faults_never_stall_a_waiting_node(fault, overlap):
    config = make_config(
        **sgp_config(overlap=overlap),
        faults={**fault, "timeout": 0.5},
        stop={"time": 40.0},
    )
    sim, ends, _, _ = starts_and_requirements(config)
    alive = [i for i in range(sim.n) if i != 2 or "crash" not in fault]
    for i in alive:
        assert ends[i][-1] > 30.0  # every node that is up still takes steps at the end
    assert sim.faults.counts["timeouts"] > 0


def test_early_arrivals_ring_grows(monkeypatch):
    """The compiled loop's ring of early arrivals starts at one step and grows as needed."""
    monkeypatch.setattr(compiled, "AHEAD", 1)
    for extra in ({"overlap": 1}, {"overlap": 0, "peers": "topology"}):
        config = make_config(
            **sgp_config(**extra),
            compute={"kind": "exponential", "mean": 1.0,
                     "heterogeneity": {"kind": "uniform", "low": 1.0, "high": 4.0}},
            faults={"crash_recover": {"rate": 0.05, "downtime": {"kind": "constant",
                                                                 "mean": 4.0}},
                    "timeout": 2.0},
            stop={"time": 40.0},
        )  # fmt: skip
        run = check_same(config)
        assert run[4].env.kernel.inbox[6].shape[1] > 1


@pytest.mark.parametrize(
    ("algorithm", "field"),
    [
        ({"overlap": 2}, "algorithm.overlap"),
        ({"overlap": True}, "algorithm.overlap"),
        ({"overlap": 0.5}, "algorithm.overlap"),
        ({"peers": "ring"}, "algorithm.peers"),
    ],
)
def test_bad_values_name_the_field(algorithm, field):
    with pytest.raises(ValueError, match=field):
        make_config(**sgp_config(**algorithm))


def test_keys_apply_to_sgp_only():
    with pytest.raises(ValueError, match="algorithm"):
        make_config(algorithm={"kind": "adpsgd", "overlap": 1})
