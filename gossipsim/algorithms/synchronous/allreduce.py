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

import scipy.sparse
import simpy

from gossipsim.algorithms.synchronous.rounds import SynchronousClock, component_average_weights
from gossipsim.engine.executor import AllReduceStep, LocalSteps, Mix
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import OptimizerSection


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
        else:
            # The same step written so that only the nodes taking part move: each takes a
            # gradient step from the shared model, then each reachable group averages.
            for node in nodes:
                sim.submit(LocalSteps(int(node), 1))
            sim.submit(Mix(reachable_groups(sim)))
        account_allreduce(sim, ring, len(nodes))
        sim.count_local_steps_many([int(node) for node in nodes], [1] * len(nodes))
        sim.count_iteration()


def reachable_groups(sim: Simulation) -> scipy.sparse.csr_matrix:
    """Averaging within each group of nodes that can reach each other now (under faults)."""
    return component_average_weights(sim.faults.usable_graph(sim.graph))


@dataclass(frozen=True)
class RingAllReduce:
    """Cost of one ring all-reduce of the full-precision model vector over all n nodes."""

    time: float  # 2(n−1)·max over ring links of (latency + d·float_bits/n / bandwidth)
    bits: int  # sent by all nodes together
    messages: int  # 2(n−1) per node

    @classmethod
    def of(cls, sim: Simulation) -> RingAllReduce:
        vector_bits = sim.network.float_bits * sim.models.shape[1]
        return cls(
            time=sim.network.allreduce_time(sim.n, vector_bits),
            bits=round(sim.n * sim.network.allreduce_bits_per_node(sim.n, vector_bits)),
            messages=2 * (sim.n - 1) * sim.n,
        )


def account_allreduce(sim: Simulation, ring: RingAllReduce, members: int) -> None:
    """Count one all-reduce: its bits and messages, and one exchange per member."""
    counters = sim.executor.counters
    counters.bits += ring.bits
    counters.messages += ring.messages
    for _ in range(members):
        sim.count_interaction()
