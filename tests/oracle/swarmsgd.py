"""The test oracle for SwarmSGD: the hand-written SimPy generators the node programs replace.

Kept as the independent reference: ``tests/test_programs.py`` holds the node programs, under
both interpreters, to these generators (same operations, times, order, rows, counters).

SwarmSGD (Nadiradze et al., arXiv 1910.12308): local steps, then a pairwise average.

Each node, forever: take H local SGD steps on its own data (H fixed or geometric), pick a
uniformly random neighbour, and average with it — blocking (both models are locked for the
exchange, so the initiator waits while its partner computes) or non-blocking (the
initiator reads the partner's communication buffer and writes the average back without
waiting). Exchanges may be quantized; each message costs latency + bits / bandwidth.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from gossipsim.algorithms.gossip.swarmsgd import SwarmSGDConfig
from gossipsim.engine.executor import BufferExchange, LocalSteps, PairAverage
from gossipsim.engine.simulation import Simulation
from tests.oracle.common import draw_local_steps, pairwise_exchange, random_neighbour


def start(sim: Simulation) -> None:
    """Start one process per node."""
    config = sim.config.algorithm
    assert isinstance(config, SwarmSGDConfig)
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
    locks = [simpy.Resource(sim.env, capacity=1) for _ in range(sim.n)]
    if config.nonblocking:
        # The read request names the buffer and carries no model: a one-word header.
        for node in range(sim.n):
            sim.env.process(nonblocking_node(sim, config, node, sim.network.float_bits, bits))
        return
    for node in range(sim.n):
        sim.env.process(blocking_node(sim, config, node, locks, bits))


def blocking_node(
    sim: Simulation,
    config: SwarmSGDConfig,
    i: int,
    locks: list[simpy.Resource],
    bits: float,
) -> Generator[simpy.Event, object, None]:
    """A node of blocking SwarmSGD.

    A node holds its own lock while it computes, and an exchange holds both partners'
    locks (taken in node-id order, so no cycle of waits can form). The initiator therefore
    waits for a busy partner to finish its current computation: that wait is idle time.
    """
    env = sim.env
    timing = sim.streams.generator("timing", i)
    steps_rng = sim.streams.generator("local_steps", i)
    pairing = sim.streams.generator("pairing", i)
    faults = sim.faults
    attempts = 1 if faults is None else len(sim.neighbours[i])
    while True:
        if faults is not None and not faults.up(i):
            yield faults.wait_up(i)
            continue
        steps = draw_local_steps(config.local_steps, steps_rng)
        with locks[i].request() as own:
            yield own
            yield env.timeout(sim.compute.duration(i, steps, env.now, timing))
            if faults is not None and not faults.up(i):
                continue  # crashed while computing: the work is lost
            sim.submit(LocalSteps(i, steps))
            sim.count_local_steps(i, steps)
        for attempt in range(attempts):
            j = random_neighbour(sim, i, pairing)
            message_time = sim.network.message_time(bits, i, j)  # over the pair's link
            first, second = (i, j) if i < j else (j, i)
            waiting_since = env.now
            with locks[first].request() as lock_first:
                yield lock_first
                with locks[second].request() as lock_second:
                    yield lock_second
                    sim.idle_time += env.now - waiting_since
                    # Both send at once: the exchange takes one message time.
                    last = attempt == attempts - 1
                    duration = yield from pairwise_exchange(sim, i, j, message_time, last)
                    if duration is None:
                        continue  # unreachable or silent partner: try another
                    sim.comm_time += 2 * duration
                    sim.submit(PairAverage(i, j))
                    sim.count_interaction()
                    break


def nonblocking_node(
    sim: Simulation,
    config: SwarmSGDConfig,
    i: int,
    request_bits: float,
    bits: float,
) -> Generator[simpy.Event, object, None]:
    """A node of non-blocking SwarmSGD: it never waits for its partner's computation.

    After its local steps it asks for the partner's buffer (a request of ``request_bits``),
    waits for the reply (the buffer, ``bits``), and sends the average back to the
    partner's buffer (``bits``) without waiting for that write, all over the pair's link.
    The exchange is applied atomically when the reply arrives. Communication time counts all three.
    """
    env = sim.env
    timing = sim.streams.generator("timing", i)
    steps_rng = sim.streams.generator("local_steps", i)
    pairing = sim.streams.generator("pairing", i)
    faults = sim.faults
    attempts = 1 if faults is None else len(sim.neighbours[i])
    while True:
        if faults is not None and not faults.up(i):
            yield faults.wait_up(i)
            continue
        steps = draw_local_steps(config.local_steps, steps_rng)
        yield env.timeout(sim.compute.duration(i, steps, env.now, timing))
        if faults is not None and not faults.up(i):
            continue  # crashed while computing: the work is lost
        sim.submit(LocalSteps(i, steps))
        sim.count_local_steps(i, steps)
        for attempt in range(attempts):
            j = random_neighbour(sim, i, pairing)
            last = attempt == attempts - 1
            request_time = sim.network.message_time(request_bits, i, j)
            message_time = sim.network.message_time(bits, i, j)
            # Request out, reply back: one round trip the node waits for (under faults,
            # either message may be lost and a spike stretches the round trip).
            round_trip = request_time + message_time
            duration = yield from pairwise_exchange(sim, i, j, round_trip, last)
            if duration is None:
                continue
            sim.comm_time += duration
            sim.comm_time += message_time  # the write, sent without waiting
            sim.submit(BufferExchange(i, j))
            sim.count_interaction()
            break
