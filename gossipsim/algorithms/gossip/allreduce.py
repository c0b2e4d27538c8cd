"""Large-batch synchronous SGD with ring all-reduce: everyone waits for the slowest node.

Each round every node computes one minibatch gradient at the shared model; the gradients
are averaged by a ring all-reduce costing 2(n−1)·latency + 2(n−1)/n·d·64/bandwidth, and
every node applies the averaged gradient.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from gossipsim.algorithms.gossip.common import SynchronousClock
from gossipsim.config import AllReduceConfig
from gossipsim.engine.executor import AllReduceStep
from gossipsim.engine.simulation import Simulation


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, AllReduceConfig)
    sim.env.process(rounds(sim))


def rounds(sim: Simulation) -> Generator[simpy.Event, object, None]:
    clock = SynchronousClock(sim)
    vector_bits = 64 * sim.models.shape[1]
    reduce_time = sim.network.allreduce_time(sim.n, vector_bits)
    bits_per_round = round(sim.n * sim.network.allreduce_bits_per_node(sim.n, vector_bits))
    while True:
        yield from clock.round(reduce_time)
        sim.submit(AllReduceStep())
        account_allreduce(sim, bits_per_round)
        for node in range(sim.n):
            sim.count_local_steps(node, 1)
        sim.count_iteration()


def account_allreduce(sim: Simulation, bits: int) -> None:
    """Count one all-reduce: its bits, 2(n−1) messages per node, and n exchanges."""
    counters = sim.executor.counters
    counters.bits += bits
    counters.messages += 2 * (sim.n - 1) * sim.n
    for _ in range(sim.n):
        sim.count_interaction()
