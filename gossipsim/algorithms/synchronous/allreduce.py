"""Large-batch synchronous SGD with ring all-reduce: everyone waits for the slowest node.

Each round every node computes one minibatch gradient at the shared model; the gradients
are averaged by a ring all-reduce over the ring of node ids 0→1→…→n−1→0 (``network.float_bits``
per coordinate), and every node applies the averaged gradient. Each of its 2(n−1) steps
moves a 1/n chunk over every ring link at once and lasts as long as the slowest link:
2(n−1)·max over ring links of (latency + d·float_bits/n / bandwidth), which with every link
alike is 2(n−1)·latency + 2(n−1)/n·d·float_bits/bandwidth. A ring link that is not an
edge of the topology has the network's numbers (or its own draw, when they are
distributions); a links file can only name topology edges.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
import simpy

from gossipsim.algorithms.synchronous.rounds import SynchronousClock, group_average_weights
from gossipsim.engine.executor import AllReduceStep, GroupAverage, LocalSteps
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import OptimizerSection
from gossipsim.system.timing import Network


class AllReduceConfig(OptimizerSection):
    """Large-batch synchronous SGD: every node's gradient is averaged by ring all-reduce."""

    kind: Literal["allreduce"]
    # linear: the lr (and its warm-up target) multiplied by the number of workers n
    # (Goyal et al. 2017). The momentum buffer is global, as the model is.
    lr_scaling: Literal["none", "linear"] = "none"


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, AllReduceConfig)
    sim.env.process(rounds(sim))


def rounds(sim: Simulation) -> Generator[simpy.Event, object, None]:
    clock = SynchronousClock(sim)
    ring = RingAllReduce.of(sim)
    while True:
        nodes = yield from clock.members()
        nodes = yield from clock.round(ring.time, nodes=nodes, messages=ring.messages)
        if sim.faults is None:
            sim.submit(AllReduceStep())
            account_allreduce(sim, ring, len(nodes))
        else:
            # The same step written so that only the nodes taking part move: each takes a
            # gradient step from the shared model, then each reachable group averages.
            for node in nodes:
                sim.submit(LocalSteps(int(node), 1))
            average_reachable_groups(sim, ring, nodes)
        sim.count_local_steps_many([int(node) for node in nodes], [1] * len(nodes))
        sim.count_iteration()


def average_reachable_groups(sim: Simulation, ring: RingAllReduce, nodes: np.ndarray) -> None:
    """Under faults: each group of nodes that can reach each other now averages its models.

    Counted as one ring all-reduce over each group's members among ``nodes`` (a group of m
    of them: 2(m−1)·m messages, 2(m−1)·d·float_bits bits; one alone sends nothing), and one
    exchange per member. The averaging itself sends no gossip messages.
    """
    assert sim.faults is not None
    groups = [
        sorted(group) for group in nx.connected_components(sim.faults.usable_graph(sim.graph))
    ]
    sim.submit(GroupAverage(group_average_weights(groups, sim.n)))
    taking_part = np.zeros(sim.n, dtype=bool)
    taking_part[nodes] = True
    counters = sim.executor.counters
    for group in groups:
        m = int(taking_part[group].sum())
        counters.bits += ring_bits(m, ring.vector_bits)
        counters.messages += ring_messages(m)
    sim.count_interactions(len(nodes))


def ring_messages(m: int) -> int:
    """Messages of one ring all-reduce over ``m`` nodes: 2(m−1) per node."""
    return 2 * (m - 1) * m


def ring_bits(m: int, vector_bits: int) -> int:
    """Bits all ``m`` nodes of one ring all-reduce of a ``vector_bits``-bit vector send."""
    return round(m * Network.allreduce_bits_per_node(m, vector_bits))


@dataclass(frozen=True)
class RingAllReduce:
    """Cost of one ring all-reduce of the full-precision model vector over all n nodes."""

    time: float  # 2(n−1)·max over ring links of (latency + d·float_bits/n / bandwidth)
    bits: int  # sent by all nodes together
    messages: int  # 2(n−1) per node
    vector_bits: int  # d·float_bits: the full-precision model vector

    @classmethod
    def of(cls, sim: Simulation) -> RingAllReduce:
        vector_bits = sim.network.float_bits * sim.models.shape[1]
        return cls(
            time=sim.network.allreduce_time(sim.n, vector_bits),
            bits=ring_bits(sim.n, vector_bits),
            messages=ring_messages(sim.n),
            vector_bits=vector_bits,
        )


def account_allreduce(sim: Simulation, ring: RingAllReduce, members: int) -> None:
    """Count one all-reduce over all n nodes: its bits and messages, one exchange per member."""
    counters = sim.executor.counters
    counters.bits += ring.bits
    counters.messages += ring.messages
    sim.count_interactions(members)
