"""Local SGD: every node takes H local steps, then all models are averaged by all-reduce.

A round lasts as long as the slowest node's H steps plus the all-reduce of the models;
H is fixed or drawn per node and round (geometric).
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from gossipsim.algorithms.gossip.allreduce import account_allreduce, reachable_groups
from gossipsim.algorithms.gossip.common import SynchronousClock, draw_local_steps
from gossipsim.config import LocalSGDConfig
from gossipsim.engine.executor import GlobalAverage, LocalSteps, Mix
from gossipsim.engine.simulation import Simulation


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, LocalSGDConfig)
    sim.env.process(rounds(sim, sim.config.algorithm))


def rounds(sim: Simulation, config: LocalSGDConfig) -> Generator[simpy.Event, object, None]:
    clock = SynchronousClock(sim)
    steps_rng = sim.streams.generators("local_steps", sim.n)
    vector_bits = 64 * sim.models.shape[1]
    reduce_time = sim.network.allreduce_time(sim.n, vector_bits)
    bits_per_round = round(sim.n * sim.network.allreduce_bits_per_node(sim.n, vector_bits))
    ring_messages = 2 * (sim.n - 1) * sim.n
    while True:
        nodes = yield from clock.members()
        steps = [draw_local_steps(config.local_steps, steps_rng[i]) for i in range(sim.n)]
        nodes = yield from clock.round(reduce_time, steps, nodes=nodes, messages=ring_messages)
        for node in nodes:
            sim.submit(LocalSteps(int(node), steps[node]))
            sim.count_local_steps(int(node), steps[node])
        sim.submit(GlobalAverage() if sim.faults is None else Mix(reachable_groups(sim)))
        account_allreduce(sim, bits_per_round, len(nodes))
        sim.count_iteration()
