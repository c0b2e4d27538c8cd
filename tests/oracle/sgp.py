"""The test oracle for SGP (the hand-written SimPy generator its node program replaces).

Stochastic Gradient Push (Assran et al., 2019): push-sum along a fixed schedule of peers.

Each node keeps a numerator x_i and a weight w_i and trains at its de-biased model
z_i = x_i / w_i. Forever: take an SGD step at z_i (x_i ← x_i − η ∇f_i(z_i)), then keep half
of (x_i, w_i) and push the other half to the peer of this step: 2^k hops away on the ring
of node ids, k cycling through 0 … ⌈log₂ n⌉ − 1 with the iteration count (``peers:
exponential``), or the next of the node's sorted neighbours in the configured graph
(``peers: topology``). Messages arrive one message time later and are added in.

With ``overlap`` τ a node starts its iteration k+1 only once every message sent to it at
a sender iteration ≤ k − τ has arrived (the idle time is counted). This oracle keeps the
owed messages as a set of (sender, iteration) pairs, found by running every node's peer
schedule. With faults a node waits at most the fault timeout, then forgets what is still
owed (a timeout is counted); a forgotten message that comes later is only added in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator

import simpy

from gossipsim.algorithms.gossip.sgp import SGPConfig
from gossipsim.engine.executor import PushReceive, PushSend, PushSumStep
from gossipsim.engine.simulation import Simulation


def start(sim: Simulation) -> None:
    config = sim.config.algorithm
    assert isinstance(config, SGPConfig)
    sim.executor.enable_push_sum()
    # The pushed numerator and the pushed weight (one full-precision float).
    message_bits = sim.executor.quantizer.message_bits(sim.models.shape[1]) + sim.network.float_bits
    message_ids = itertools.count()
    waits = None if config.overlap == "unbounded" else Waits(sim, config.peers)
    for node in range(sim.n):
        sim.env.process(
            node_process(sim, node, message_bits, message_ids, config.peers, config.overlap, waits)
        )


def exponential_peer(node: int, iteration: int, n: int) -> int:
    """The out-peer of ``node`` at its ``iteration``-th push: 2^k hops ahead, k cycling."""
    hops = 2 ** (iteration % max(1, math.ceil(math.log2(n))))
    return (node + hops) % n


def peer_of(sim: Simulation, peers: str, node: int, iteration: int) -> int:
    if peers == "exponential":
        return exponential_peer(node, iteration, sim.n)
    neighbours = sorted(int(j) for j in sim.neighbours[node])
    return neighbours[iteration % len(neighbours)]


class Waits:
    """Who owes what to whom: per node, the (sender, iteration) pairs it still waits for."""

    def __init__(self, sim: Simulation, peers: str) -> None:
        self.sim = sim
        self.peers = peers
        self.horizon = [-1] * sim.n  # owed: everything sent up to this iteration
        self.owed: list[set[tuple[int, int]]] = [set() for _ in range(sim.n)]
        self.early: list[set[tuple[int, int]]] = [set() for _ in range(sim.n)]
        self.sleeper: list[simpy.Event | None] = [None] * sim.n

    def missing(self, i: int, upto: int) -> bool:
        """Extend what ``i`` is owed to iterations ≤ ``upto``; is anything still missing?"""
        while self.horizon[i] < upto:
            self.horizon[i] += 1
            step = self.horizon[i]
            for sender in range(self.sim.n):
                if peer_of(self.sim, self.peers, sender, step) == i:
                    if (sender, step) in self.early[i]:
                        self.early[i].remove((sender, step))
                    else:
                        self.owed[i].add((sender, step))
        return bool(self.owed[i])

    def sleep(self, i: int) -> simpy.Event:
        env = self.sim.env
        event = env.event()
        self.sleeper[i] = event
        if self.sim.faults is not None:
            env.timeout(self.sim.faults.timeout).callbacks.append(
                lambda _timer: self.timed_out(i, event)
            )
        return event

    def timed_out(self, i: int, event: simpy.Event) -> None:
        if event.triggered:
            return
        self.sim.faults.note_failed_attempt(last=True)
        self.owed[i].clear()  # forgotten: if they come later, they are only added in
        self.sleeper[i] = None
        event.succeed()

    def delivered(self, i: int, sender: int, step: int) -> None:
        if step > self.horizon[i]:
            self.early[i].add((sender, step))
        elif (sender, step) in self.owed[i]:
            self.owed[i].remove((sender, step))
            event = self.sleeper[i]
            if not self.owed[i] and event is not None:
                self.sleeper[i] = None
                event.succeed()


def node_process(
    sim: Simulation,
    i: int,
    message_bits: float,
    message_ids: itertools.count,
    peers: str,
    overlap: int | str,
    waits: Waits | None,
) -> Generator[simpy.Event, object, None]:
    env = sim.env
    timing = sim.streams.generator("timing", i)
    faults = sim.faults
    for iteration in itertools.count():
        if waits is not None:
            assert isinstance(overlap, int)
            since = env.now
            if waits.missing(i, iteration - 1 - overlap):
                yield waits.sleep(i)
            sim.idle_time += env.now - since
        if faults is not None and not faults.up(i):
            yield faults.wait_up(i)
        yield env.timeout(sim.compute.duration(i, 1, env.now, timing))
        if faults is not None and not faults.up(i):
            continue  # crashed while computing: the step is lost
        sim.submit(PushSumStep(i))
        sim.count_local_steps(i, 1)
        peer = peer_of(sim, peers, i, iteration)
        message_time = sim.network.message_time(message_bits, i, peer)  # over that link
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
        env.process(_deliver(sim, message, delay, waits, peer, i, iteration))


def _deliver(
    sim: Simulation,
    message: int,
    delay: float,
    waits: Waits | None,
    peer: int,
    sender: int,
    iteration: int,
) -> Generator[simpy.Event, object, None]:
    yield sim.env.timeout(delay)
    sim.submit(PushReceive(message))
    sim.count_interaction()
    if waits is not None:
        waits.delivered(peer, sender, iteration)
