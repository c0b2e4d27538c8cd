"""The test oracle for AD-PSGD (the hand-written SimPy generator its node program replaces).

AD-PSGD (Lian et al., 2018): asynchronous; a gradient step overlapped with a pairwise average.

Each node, forever: start computing a minibatch gradient at its current model; meanwhile
pick a random neighbour and average with it atomically (the partner does not stop
computing); when both are done, apply the (now slightly stale) gradient to the averaged
model. An iteration lasts max(compute time, message time).
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from gossipsim.algorithms.gossip.adpsgd import ADPSGDConfig
from gossipsim.engine.executor import ApplyGradient, GradientSnapshot, PairAverage
from gossipsim.engine.simulation import Simulation
from tests.oracle.common import pairwise_exchange, random_neighbour


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, ADPSGDConfig)
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
    for node in range(sim.n):
        sim.env.process(node_process(sim, node, bits))


def node_process(sim: Simulation, i: int, bits: float) -> Generator[simpy.Event, object, None]:
    env = sim.env
    timing = sim.streams.generator("timing", i)
    pairing = sim.streams.generator("pairing", i)
    faults = sim.faults
    if faults is None:
        while True:
            sim.submit(GradientSnapshot(i))
            compute = sim.compute.duration(i, 1, env.now, timing)
            j = random_neighbour(sim, i, pairing)
            message_time = sim.network.message_time(bits, i, j)  # over the pair's link
            # The average completes after one message time; the gradient when compute is done.
            started = env.now
            yield env.timeout(message_time)
            sim.comm_time += message_time
            sim.submit(PairAverage(i, j))
            sim.count_interaction()
            # The rest of the computation, measured on the clock (as with faults below).
            yield env.timeout(max(0.0, compute - (env.now - started)))
            sim.submit(ApplyGradient(i))
            sim.count_local_steps(i, 1)
    # With faults: an unreachable or silent partner costs a timeout, then another is tried;
    # a node that crashes drops the gradient it was computing.
    attempts = len(sim.neighbours[i])
    while True:
        if not faults.up(i):
            yield faults.wait_up(i)
            continue
        sim.submit(GradientSnapshot(i))
        compute = sim.compute.duration(i, 1, env.now, timing)
        started = env.now
        for attempt in range(attempts):
            j = random_neighbour(sim, i, pairing)
            last = attempt == attempts - 1
            message_time = sim.network.message_time(bits, i, j)
            duration = yield from pairwise_exchange(sim, i, j, message_time, last)
            if duration is None:
                continue
            sim.comm_time += duration
            sim.submit(PairAverage(i, j))
            sim.count_interaction()
            break
        yield env.timeout(max(0.0, compute - (env.now - started)))
        if faults.up(i):
            sim.submit(ApplyGradient(i))
            sim.count_local_steps(i, 1)
