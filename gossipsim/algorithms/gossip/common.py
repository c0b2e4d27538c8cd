"""Pieces shared by the gossip algorithms: neighbour choice, synchronous round timing."""

from __future__ import annotations

from collections.abc import Generator

import networkx as nx
import numpy as np
import scipy.sparse
import simpy

from gossipsim.config import FixedLocalSteps, GeometricLocalSteps
from gossipsim.engine.simulation import Simulation


def draw_local_steps(
    local_steps: FixedLocalSteps | GeometricLocalSteps, rng: np.random.Generator
) -> int:
    """H for one interaction or round: the fixed value, or a geometric draw on {1, 2, ...}."""
    if isinstance(local_steps, GeometricLocalSteps):
        return int(rng.geometric(1.0 / local_steps.mean))
    return local_steps.value


def random_neighbour(sim: Simulation, node: int, rng: np.random.Generator) -> int:
    """A uniformly random neighbour of ``node`` in the topology."""
    neighbours = sim.neighbours[node]
    return int(neighbours[rng.integers(len(neighbours))])


def pairwise_exchange(
    sim: Simulation, i: int, j: int, message_time: float, last_attempt: bool = True
) -> Generator[simpy.Event, object, float | None]:
    """Wait out one two-message exchange between ``i`` and ``j``; return its duration.

    Without faults it takes ``message_time``. With faults it fails (returns None) when the
    partner is unreachable, a message is lost, or the partner or link goes down before it
    completes; the initiator then has waited ``faults.timeout`` and may try another partner.
    """
    faults = sim.faults
    duration = message_time if faults is None else faults.exchange(i, j, message_time)
    if duration is not None:
        yield sim.env.timeout(duration)
        if faults is None or faults.reachable(i, j):
            return duration
    yield sim.env.timeout(faults.timeout)
    faults.note_failed_attempt(last=last_attempt)
    return None


class SynchronousClock:
    """Per-node compute times of synchronous rounds, drawn from each node's timing stream.

    A round lasts as long as its slowest node plus the communication phase; the others
    idle for the difference. Idle and communication time are accounted when the round
    has actually elapsed, so a run stopped mid-round never counts time that did not pass.

    With faults, :meth:`members` decides who takes part: ``faults.sync: wait`` holds the
    round until every crashed node is back (forever, after a permanent crash — the run
    stalls and says so in ``stalled_rounds``); ``faults.sync: timeout`` waits
    ``faults.timeout`` seconds for the missing nodes and goes on without them. A lost
    message is resent after the timeout (a ring or a neighbourhood exchange cannot skip one).
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.timing = sim.streams.generators("timing", sim.n)
        self.everyone = np.arange(sim.n)
        self.faults = sim.faults
        self.fault_rng = sim.streams.generator("faults/rounds") if sim.faults else None

    def members(self) -> Generator[simpy.Event, object, np.ndarray]:
        """Wait until a round can start; return the nodes that take part in it."""
        faults = self.faults
        if faults is None:
            return self.everyone
        if faults.config.sync == "wait":
            down = [int(node) for node in np.flatnonzero(~faults.node_up)]
            if down:
                faults.counts["stalled_rounds"] += 1
                assert isinstance(self.sim.env, simpy.Environment)  # faults run on SimPy
                yield self.sim.env.all_of([faults.wait_up(node) for node in down])
            return self.everyone
        return faults.alive()

    def round(
        self,
        communication: float,
        steps: list[int] | None = None,
        nodes: np.ndarray | None = None,
        messages: int = 0,
    ) -> Generator[simpy.Event, object, np.ndarray]:
        """Wait out one round: node i computes ``steps[i]`` steps (default 1), then all talk.

        Returns the nodes whose work counts: those of ``nodes`` still up at the end.
        """
        sim = self.sim
        now = sim.env.now
        nodes = self.everyone if nodes is None else nodes
        durations = np.array(
            [
                sim.compute.duration(int(i), 1 if steps is None else steps[i], now, self.timing[i])
                for i in nodes
            ]
        )
        slowest = float(durations.max()) if len(durations) else 0.0
        extra = 0.0
        faults = self.faults
        if faults is not None:
            if len(nodes) < sim.n:
                faults.counts["timeouts"] += 1
                extra += faults.timeout
            if faults.config.message_loss > 0 and messages > 0:
                assert self.fault_rng is not None
                lost = int(self.fault_rng.binomial(messages, faults.config.message_loss))
                faults.counts["messages_lost"] += lost
                faults.counts["retries"] += lost
                extra += lost * faults.timeout
        yield sim.env.timeout(slowest + communication + extra)
        sim.idle_time += float((slowest - durations).sum())
        sim.comm_time += len(nodes) * communication
        return nodes if faults is None else nodes[faults.node_up[nodes]]


def component_average_weights(graph: nx.Graph) -> scipy.sparse.csr_matrix:
    """Mixing matrix that averages the models inside each connected component of ``graph``."""
    rows, cols, values = [], [], []
    for component in nx.connected_components(graph):
        members = sorted(component)
        weight = 1.0 / len(members)
        for i in members:
            rows.extend([i] * len(members))
            cols.extend(members)
            values.extend([weight] * len(members))
    n = graph.number_of_nodes()
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, n))
