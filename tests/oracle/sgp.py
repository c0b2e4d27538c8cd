"""The test oracle for SGP (the hand-written SimPy generator its node program replaces).

Stochastic Gradient Push (Assran et al., 2019): push-sum over a time-varying exponential graph.

Each node keeps a numerator x_i and a weight w_i and trains at its de-biased model
z_i = x_i / w_i. Forever: take an SGD step at z_i (x_i ← x_i − η ∇f_i(z_i)), then keep half
of (x_i, w_i) and push the other half to the peer 2^k hops away on the ring of node ids,
k cycling through 0 … ⌈log₂ n⌉ − 1 with the node's iteration count (the directed
exponential graph of the SGP paper; the configured topology is not used). Messages
arrive one message time later and are added in; nobody waits for anybody.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator

import simpy

from gossipsim.engine.executor import PushReceive, PushSend, PushSumStep
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.config import SGPConfig


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, SGPConfig)
    sim.executor.enable_push_sum()
    # The pushed numerator and the pushed weight (one full-precision float).
    message_bits = sim.executor.quantizer.message_bits(sim.models.shape[1]) + sim.network.float_bits
    message_time = sim.network.message_time(message_bits)
    message_ids = itertools.count()
    for node in range(sim.n):
        sim.env.process(node_process(sim, node, message_time, message_ids))


def exponential_peer(node: int, iteration: int, n: int) -> int:
    """The out-peer of ``node`` at its ``iteration``-th push: 2^k hops ahead, k cycling."""
    hops = 2 ** (iteration % max(1, math.ceil(math.log2(n))))
    return (node + hops) % n


def node_process(
    sim: Simulation, i: int, message_time: float, message_ids: itertools.count
) -> Generator[simpy.Event, object, None]:
    env = sim.env
    timing = sim.streams.generator("timing", i)
    faults = sim.faults
    for iteration in itertools.count():
        if faults is not None and not faults.up(i):
            yield faults.wait_up(i)
        yield env.timeout(sim.compute.duration(i, 1, env.now, timing))
        if faults is not None and not faults.up(i):
            continue  # crashed while computing: the step is lost
        sim.submit(PushSumStep(i))
        sim.count_local_steps(i, 1)
        peer = exponential_peer(i, iteration, sim.n)
        delay = message_time
        if faults is not None:
            delay = faults.message(i, message_time) if faults.reachable(i, peer) else None
            if delay is None:
                # No acknowledgement: the sender keeps the half it would have pushed, so
                # numerators and weights stay consistent (nothing is created or lost).
                faults.note_failed_attempt(last=True)
                continue
        message = next(message_ids)
        sim.comm_time += delay
        sim.submit(PushSend(i, peer, message))
        env.process(_deliver(sim, message, delay))


def _deliver(sim: Simulation, message: int, delay: float) -> Generator[simpy.Event, object, None]:
    yield sim.env.timeout(delay)
    sim.submit(PushReceive(message))
    sim.count_interaction()
