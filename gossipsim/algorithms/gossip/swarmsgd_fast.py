"""SwarmSGD's node processes as callbacks on the lean event loop (the fast path).

Same node logic as the generators in :mod:`gossipsim.algorithms.gossip.swarmsgd`, step for
step: each callback is the code between two ``yield`` statements there. The node locks
replay ``simpy.Resource(capacity=1)`` exactly: a request appends to the lock's queue and,
if the lock is free, grants the head of the queue with an event at the current instant; a
release frees the lock at once and schedules a release event that grants the head of the
queue when it is processed. A node resumes when its grant event is processed, as a SimPy
process does. Draws come from the node's own streams in the same order (fetched ahead in
blocks, see :mod:`gossipsim.engine.draws`). ``tests/test_batched_schedule.py`` checks that
both produce the same operations at the same times in the same order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial

from gossipsim.config import SwarmSGDConfig
from gossipsim.engine.batched import BUFFER, PAIR, BatchedExecutor
from gossipsim.engine.draws import NodeClock, local_step_draws, neighbour_draws
from gossipsim.engine.executor import BufferExchange, LocalSteps, PairAverage
from gossipsim.engine.lean import LeanEnvironment
from gossipsim.engine.simulation import Simulation


def _loggers(
    sim: Simulation, nonblocking: bool
) -> tuple[Callable[[int, int], None], Callable[[int, int], None]]:
    """(log local steps, log exchange): straight into a batched log, else as operations."""
    executor = sim.executor
    if isinstance(executor, BatchedExecutor):
        return executor.log_local, partial(executor.log_pair, BUFFER if nonblocking else PAIR)
    exchange = BufferExchange if nonblocking else PairAverage
    return (
        lambda node, steps: sim.submit(LocalSteps(node, steps)),
        lambda i, j: sim.submit(exchange(i, j)),
    )


def start_fast(sim: Simulation, config: SwarmSGDConfig, message_time: float) -> None:
    """Start every node of SwarmSGD on the lean event loop."""
    env = sim.env
    assert isinstance(env, LeanEnvironment)
    n = sim.n
    streams = sim.streams
    clocks = [NodeClock(sim.compute, i, streams.generator("timing", i)) for i in range(n)]
    draw_steps = [
        local_step_draws(config.local_steps, streams.generator("local_steps", i)) for i in range(n)
    ]
    partners = [
        neighbour_draws(sim.neighbours[i], streams.generator("pairing", i)).take for i in range(n)
    ]
    log_local, log_exchange = _loggers(sim, config.nonblocking)
    batch = [min(sim.problem.batch_size, y.shape[0]) for y in sim.problem.shard_y]
    n_train = sim.problem.n_train
    epochs_limit = sim.config.stop.epochs
    interactions_limit = sim.config.stop.interactions
    request_stop = sim.request_stop
    schedule = env.schedule
    soon = env.soon
    steps = [0] * n
    partner = [0] * n

    def count_local_steps(i: int, s: int) -> None:
        # Simulation.count_local_steps, inlined.
        sim.local_steps += s
        sim.samples += s * batch[i]
        if epochs_limit is not None and sim.samples / n_train >= epochs_limit:
            request_stop("epochs")

    def count_interaction() -> None:
        sim.interactions += 1
        if interactions_limit is not None and sim.interactions >= interactions_limit:
            request_stop("interactions")

    if config.nonblocking:

        def top(i: int) -> None:
            s = draw_steps[i]()
            steps[i] = s
            schedule(clocks[i].duration(s, env.now), after_compute, i)

        def after_compute(i: int) -> None:
            s = steps[i]
            log_local(i, s)
            count_local_steps(i, s)
            partner[i] = partners[i]()
            schedule(message_time, after_read, i)

        def after_read(i: int) -> None:
            sim.comm_time += message_time
            log_exchange(i, partner[i])
            count_interaction()
            top(i)

        for i in range(n):
            env.start(top, i)
        return

    # Blocking: simpy.Resource(capacity=1) per node, replayed.
    exchange_time = 2 * message_time  # both partners send at once
    held = [False] * n
    queue = [deque() for _ in range(n)]
    resume: list[Callable[[int], None]] = [top_placeholder] * n
    waiting_since = [0.0] * n

    def grant(i: int) -> None:
        resume[i](i)

    def request(lock: int, i: int, then: Callable[[int], None]) -> None:
        resume[i] = then
        waiting = queue[lock]
        waiting.append(i)
        if not held[lock]:
            held[lock] = True
            soon.append((grant, waiting.popleft()))

    def release_event(lock: int) -> None:
        waiting = queue[lock]
        if waiting and not held[lock]:
            held[lock] = True
            soon.append((grant, waiting.popleft()))

    def release(lock: int) -> None:
        held[lock] = False
        soon.append((release_event, lock))

    def top(i: int) -> None:
        steps[i] = draw_steps[i]()
        request(i, i, after_own_lock)

    def after_own_lock(i: int) -> None:
        schedule(clocks[i].duration(steps[i], env.now), after_compute, i)

    def after_compute(i: int) -> None:
        s = steps[i]
        log_local(i, s)
        count_local_steps(i, s)
        release(i)
        j = partners[i]()
        partner[i] = j
        waiting_since[i] = env.now
        request(i if i < j else j, i, after_first_lock)

    def after_first_lock(i: int) -> None:
        j = partner[i]
        request(j if i < j else i, i, after_second_lock)

    def after_second_lock(i: int) -> None:
        sim.idle_time += env.now - waiting_since[i]
        schedule(message_time, after_exchange, i)

    def after_exchange(i: int) -> None:
        j = partner[i]
        sim.comm_time += exchange_time
        log_exchange(i, j)
        count_interaction()
        if i < j:
            release(j)
            release(i)
        else:
            release(i)
            release(j)
        top(i)

    for i in range(n):
        env.start(top, i)


def top_placeholder(i: int) -> None:
    raise RuntimeError(f"node {i} resumed before it requested a lock")
