"""D-PSGD (Lian et al., 2017): synchronous rounds of a local step and neighbourhood averaging.

Each round every node takes one SGD step on its own data, then sends its model to all
its neighbours and replaces it by the Metropolis–Hastings weighted average of its
neighbourhood. A round ends when the slowest node has computed and the slowest exchange
has finished: a node sends its model to each of its deg(i) neighbours over its own link.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from gossipsim.algorithms.synchronous.rounds import SynchronousClock
from gossipsim.engine.executor import LocalSteps, Mix
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.config import DPSGDConfig
from gossipsim.system.topology import metropolis_weights


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, DPSGDConfig)
    sim.env.process(rounds(sim))


def rounds(sim: Simulation) -> Generator[simpy.Event, object, None]:
    weights = metropolis_weights(sim.graph)
    clock = SynchronousClock(sim)
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
    max_degree = max(len(nbrs) for nbrs in sim.neighbours)
    # The slowest exchange: the node with the most neighbours sends them one message each.
    exchange = sim.network.latency + max_degree * bits / sim.network.bandwidth
    directed_messages = 2 * sim.graph.number_of_edges()
    while True:
        nodes = yield from clock.members()
        nodes = yield from clock.round(exchange, nodes=nodes, messages=directed_messages)
        for node in nodes:
            sim.submit(LocalSteps(int(node), 1))
            sim.count_local_steps(int(node), 1)
        if sim.faults is None:
            sim.submit(Mix(weights))
        else:
            # Average over the links usable now: down nodes and cut links drop out.
            sim.submit(Mix(metropolis_weights(sim.faults.usable_graph(sim.graph))))
        for _ in nodes:
            sim.count_interaction()
        sim.count_iteration()
