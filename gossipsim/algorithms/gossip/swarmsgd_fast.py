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
from heapq import heappush
from typing import Any

from gossipsim.config import FixedLocalSteps, SwarmSGDConfig
from gossipsim.engine.batched import BUFFER, LOCAL, PAIR, BatchedExecutor
from gossipsim.engine.draws import NodeClock, local_step_draws, neighbour_draws
from gossipsim.engine.executor import BufferExchange, LocalSteps, PairAverage
from gossipsim.engine.lean import LeanEnvironment
from gossipsim.engine.simulation import Simulation


def _loggers(
    sim: Simulation, nonblocking: bool
) -> tuple[Callable[[int, int], None], Callable[[int, int], None]]:
    """(log local steps, log exchange): straight into a batched log, else as operations."""
    executor = sim.executor
    if not isinstance(executor, BatchedExecutor):
        exchange = BufferExchange if nonblocking else PairAverage
        return (
            lambda node, steps: sim.submit(LocalSteps(node, steps)),
            lambda i, j: sim.submit(exchange(i, j)),
        )
    # BatchedExecutor.log_local / log_pair, inlined (this runs once per operation).
    codes, first, second, levels, last = executor.log_lists()
    add_code, add_first, add_second, add_level = (
        codes.append,
        first.append,
        second.append,
        levels.append,
    )
    limit = executor.flush_every
    flush = executor.flush
    code = BUFFER if nonblocking else PAIR

    def log_local(node: int, steps: int) -> None:
        level = last[node] + 1
        last[node] = level
        add_code(LOCAL)
        add_first(node)
        add_second(steps)
        add_level(level)

    def log_exchange(i: int, j: int) -> None:
        li = last[i]
        lj = last[j]
        level = (li if li > lj else lj) + 1
        last[i] = level
        last[j] = level
        add_code(code)
        add_first(i)
        add_second(j)
        add_level(level)
        if len(codes) >= limit:
            flush()

    return log_local, log_exchange


def start_fast(sim: Simulation, config: SwarmSGDConfig, message_time: float) -> None:
    """Start every node of SwarmSGD on the lean event loop."""
    env = sim.env
    assert isinstance(env, LeanEnvironment)
    n = sim.n
    streams = sim.streams
    timing = streams.generators("timing", n)
    clocks = [NodeClock(sim.compute, i, timing[i]) for i in range(n)]
    durations = [clock.duration for clock in clocks]
    one_step = [clock.one_step for clock in clocks]
    fixed = config.local_steps if isinstance(config.local_steps, FixedLocalSteps) else None
    steps_rng: list[Any] = streams.generators("local_steps", n) if fixed is None else [None] * n
    draw_steps: list[Any] = [  # None where the step count is fixed
        local_step_draws(config.local_steps, steps_rng[i]) if fixed is None else None
        for i in range(n)
    ]
    pairing = streams.generators("pairing", n)
    partners = [neighbour_draws(sim.neighbours[i], pairing[i]).take for i in range(n)]
    log_local, log_exchange = _loggers(sim, config.nonblocking)
    batch = [min(sim.problem.batch_size, y.shape[0]) for y in sim.problem.shard_y]
    n_train = sim.problem.n_train
    epochs_limit = sim.config.stop.epochs
    interactions_limit = sim.config.stop.interactions
    request_stop = sim.request_stop
    schedule = env.schedule
    soon = env.soon
    steps = [1 if fixed is None else fixed.value] * n
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

    def compute_time(i: int) -> float:
        s = steps[i]
        return one_step[i](env.now) if s == 1 else durations[i](s, env.now)

    if config.nonblocking:

        def top(i: int) -> None:
            if fixed is None:
                steps[i] = draw_steps[i]()
            schedule(compute_time(i), after_compute, i)

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

    # Blocking: simpy.Resource(capacity=1) per node, replayed. A grant resumes the node
    # at the continuation it registered when it requested the lock.
    exchange_time = 2 * message_time  # both partners send at once
    held = [False] * n
    queue: list[deque[int]] = [deque() for _ in range(n)]
    resume: list[Callable[[int], None]] = [top_placeholder] * n
    waiting_since = [0.0] * n

    def request(lock: int, i: int, then: Callable[[int], None]) -> None:
        resume[i] = then
        waiting = queue[lock]
        waiting.append(i)
        if not held[lock]:
            held[lock] = True
            head = waiting.popleft()
            soon.append((resume[head], head))

    def release_event(lock: int) -> None:
        waiting = queue[lock]
        if waiting and not held[lock]:
            held[lock] = True
            head = waiting.popleft()
            soon.append((resume[head], head))

    def top(i: int) -> None:  # type: ignore[no-redef]  # the blocking path's own
        if fixed is None:
            steps[i] = draw_steps[i]()
        request(i, i, after_own_lock)

    # ``env.schedule`` and the counters, inlined in the blocking path (its hottest code).
    heap = env.heap
    insertion = env.insertion

    def after_own_lock(i: int) -> None:
        now = env.now
        at = now + compute_time(i)
        if at == now:
            soon.append((after_compute, i))
        else:
            heappush(heap, (at, next(insertion), after_compute, i))

    def after_compute(i: int) -> None:  # type: ignore[no-redef]  # the blocking path's own
        s = steps[i]
        log_local(i, s)
        sim.local_steps += s
        sim.samples += s * batch[i]
        if epochs_limit is not None and sim.samples / n_train >= epochs_limit:
            request_stop("epochs")
        held[i] = False  # release the own lock
        soon.append((release_event, i))
        j = partners[i]()
        partner[i] = j
        waiting_since[i] = env.now
        request(i if i < j else j, i, after_first_lock)

    def after_first_lock(i: int) -> None:
        j = partner[i]
        request(j if i < j else i, i, after_second_lock)

    def after_second_lock(i: int) -> None:
        now = env.now
        sim.idle_time += now - waiting_since[i]
        at = now + message_time
        if at == now:
            soon.append((after_exchange, i))
        else:
            heappush(heap, (at, next(insertion), after_exchange, i))

    def after_exchange(i: int) -> None:
        j = partner[i]
        sim.comm_time += exchange_time
        log_exchange(i, j)
        sim.interactions += 1
        if interactions_limit is not None and sim.interactions >= interactions_limit:
            request_stop("interactions")
        # Leave the inner ``with`` (the larger id), then the outer one.
        first, second = (i, j) if i < j else (j, i)
        held[second] = False
        soon.append((release_event, second))
        held[first] = False
        soon.append((release_event, first))
        top(i)

    for i in range(n):
        env.start(top, i)


def top_placeholder(i: int) -> None:
    raise RuntimeError(f"node {i} resumed before it requested a lock")
