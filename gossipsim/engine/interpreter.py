"""The SimPy interpreter of node programs: the reference executor.

One SimPy process per node walks the node's resolved program (:mod:`gossipsim.engine.program`)
and turns each waiting instruction into the SimPy event it stands for — a timeout, a
``simpy.Resource`` request, a fault model's recovery event — and every ``LOG`` into one
operation submitted to the executor at that instant. The compiled loop
(:mod:`gossipsim.engine.compiled`) interprets the same program; ``tests/test_programs.py``
holds both to independently written SimPy generators.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from typing import Any

import simpy

from gossipsim.engine import program as P
from gossipsim.engine.batched import logged_operation
from gossipsim.engine.executor import PushReceive, PushSend
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import GeometricLocalSteps


def exponential_peer(node: int, iteration: int, n: int) -> int:
    """The out-peer of ``node`` at its ``iteration``-th push: 2^k hops ahead, k cycling."""
    hops = 2 ** (iteration % max(1, math.ceil(math.log2(n))))
    return (node + hops) % n


def start_program(sim: Simulation, program: P.Program) -> None:
    """Start every node of ``program``: compiled on the lean loop, SimPy processes otherwise."""
    links, base = P.link_slots(sim.network, sim.neighbours, program.exponential)
    resolved = program.resolve(sim.faults is not None, sim.network, links, base)
    if program.push_sum:
        sim.executor.enable_push_sum()
    if sim.lean:
        from gossipsim.engine.compiled import ProgramKernel  # numba: fast runs only

        ProgramKernel(sim, program, resolved)
        return
    assert isinstance(sim.env, simpy.Environment)
    locks = [simpy.Resource(sim.env, capacity=1) for _ in range(sim.n)] if program.locks else []
    messages = itertools.count()
    inbox = Inbox(sim, resolved) if P.AWAIT_MESSAGES in resolved.op.tolist() else None
    for node in range(sim.n):
        sim.env.process(node_process(sim, program, resolved, node, locks, messages, inbox))


class Inbox:
    """What each node has received of the messages it is owed (``AWAIT_MESSAGES``).

    Node i waits with a threshold step t: it needs every message sent to it at a step ≤ t.
    ``got[i]`` counts those that arrived (or were given up on), ``need[i]`` how many the
    schedule sends, ``ahead[i]`` the arrivals from steps beyond t by step, and
    ``given_up[i]`` the threshold of its last timed-out wait (messages up to it that come
    later are added in but no longer counted).
    """

    def __init__(self, sim: Simulation, resolved: P.Resolved) -> None:
        n = sim.n
        self.sim = sim
        self.edges = P.in_schedule(resolved, sim.neighbours)
        self.threshold = [-1] * n
        self.got = [0] * n
        self.need = [0] * n
        self.given_up = [-1] * n
        self.ahead: list[dict[int, int]] = [{} for _ in range(n)]
        self.waiting: list[simpy.Event | None] = [None] * n

    def ready(self, i: int, step: int) -> bool:
        """Whether node ``i`` has every message sent to it at a step ≤ ``step``."""
        if step > self.threshold[i]:
            ahead = self.ahead[i]
            for s in range(self.threshold[i] + 1, step + 1):
                self.got[i] += ahead.pop(s, 0)
            self.threshold[i] = step
            self.need[i] = P.expected_messages(self.edges[i], step)
        return self.got[i] >= self.need[i]

    def wait(self, i: int) -> simpy.Event:
        """The event node ``i`` waits on; with faults it gives up after the timeout."""
        env = self.sim.env
        assert isinstance(env, simpy.Environment)
        wake = env.event()
        self.waiting[i] = wake
        faults = self.sim.faults
        if faults is not None:
            timer = env.timeout(faults.timeout)
            timer.callbacks.append(lambda _: self._give_up(i, wake))
        return wake

    def _give_up(self, i: int, wake: simpy.Event) -> None:
        if self.waiting[i] is not wake:
            return  # the messages came in time
        faults = self.sim.faults
        assert faults is not None
        faults.note_failed_attempt(last=True)
        self.got[i] = self.need[i]
        self.given_up[i] = self.threshold[i]
        self.waiting[i] = None
        wake.succeed()

    def arrive(self, i: int, step: int) -> None:
        """A message sent at ``step`` reached node ``i`` (and was added in)."""
        if step <= self.given_up[i]:
            return
        if step > self.threshold[i]:
            self.ahead[i][step] = self.ahead[i].get(step, 0) + 1
            return
        self.got[i] += 1
        wake = self.waiting[i]
        if wake is not None and self.got[i] >= self.need[i]:
            self.waiting[i] = None
            wake.succeed()


def node_process(
    sim: Simulation,
    program: P.Program,
    resolved: P.Resolved,
    i: int,
    locks: list[simpy.Resource],
    messages: itertools.count,
    inbox: Inbox | None = None,
) -> Generator[Any, object, None]:
    """Node ``i`` running its program under SimPy, one instruction at a time."""
    env = sim.env
    faults = sim.faults
    op = resolved.op.tolist()
    arg = resolved.arg.tolist()
    target = resolved.target.tolist()
    constants = resolved.constants.tolist()
    linked = resolved.linked.tolist()  # rows of per-link durations (none if links are alike)
    timing = sim.streams.generator("timing", i)
    steps_rng = sim.streams.generator("local_steps", i)
    pairing = sim.streams.generator("pairing", i)
    neighbours = sim.neighbours[i]
    # Node i's link slots: its neighbour table's, then its exponential peers'.
    first_link = sum(len(table) for table in sim.neighbours[:i])
    cycle = P.exponential_cycle(sim.n)
    first_peer_link = resolved.exponential_base + i * cycle
    local_steps = program.local_steps
    geometric_p = 1.0 / local_steps.mean if isinstance(local_steps, GeometricLocalSteps) else 0.0
    fixed_steps = getattr(local_steps, "value", 1)
    requests: dict[int, Any] = {}
    H, J, K, A, L = 1, -1, 0, 0, 0

    def seconds(pc: int) -> float:
        a = arg[pc]
        return constants[a] if a >= 0 else linked[-a - 1][L]

    T = D = X = 0.0
    pc = 0
    while True:
        code = op[pc]
        if code == P.DRAW_STEPS:
            H = int(steps_rng.geometric(geometric_p)) if geometric_p else fixed_steps
        elif code == P.SET_STEPS:
            H = arg[pc]
        elif code == P.PICK_NEIGHBOUR:
            k = int(pairing.integers(len(neighbours)))
            J, L = int(neighbours[k]), first_link + k
        elif code == P.PICK_EXPONENTIAL_PEER:
            J, L = exponential_peer(i, K, sim.n), first_peer_link + K % cycle
        elif code == P.PICK_NEXT_NEIGHBOUR:
            k = K % len(neighbours)
            J, L = int(neighbours[k]), first_link + k
        elif code == P.NEXT_ITERATION:
            K += 1
        elif code == P.MARK:
            T = env.now
        elif code == P.ADD_IDLE_SINCE_MARK:
            sim.idle_time += env.now - T
        elif code == P.DRAW_DURATION:
            D = sim.compute.duration(i, H, env.now, timing)
        elif code == P.ADD_COMM:
            sim.comm_time += seconds(pc)
        elif code == P.ADD_COMM_X:
            sim.comm_time += arg[pc] * X
        elif code == P.LOG:
            operation = arg[pc]
            sim.submit(logged_operation(operation, i, H if operation == P.LOCAL else J))
        elif code == P.COUNT_STEPS:
            sim.count_local_steps(i, H)
        elif code == P.COUNT_INTERACTION:
            sim.count_interaction()
        elif code == P.RELEASE:
            lock = _lock(arg[pc], i, J)
            locks[lock].release(requests.pop(lock))
        elif code == P.SEND or code == P.SEND_X:
            message = next(messages)
            sim.submit(PushSend(i, J, message))
            delay = seconds(pc) if code == P.SEND else X
            env.process(_deliver(sim, message, delay, inbox, J, K))
        elif code == P.JUMP:
            pc = target[pc]
            continue
        elif code == P.ACQUIRE:
            lock = _lock(arg[pc], i, J)
            request = locks[lock].request()
            requests[lock] = request
            yield request
        elif code == P.COMPUTE:
            yield env.timeout(sim.compute.duration(i, H, env.now, timing))
        elif code == P.WAIT:
            yield env.timeout(seconds(pc))
        elif code == P.WAIT_REST:
            yield env.timeout(max(0.0, D - (env.now - T)))
        elif code == P.AWAIT_MESSAGES:
            assert inbox is not None
            if not inbox.ready(i, K - 1 - arg[pc]):
                yield inbox.wait(i)
        elif code == P.IF_UP:
            if faults.up(i):
                pc = target[pc]
                continue
        elif code == P.IF_DOWN:
            if not faults.up(i):
                pc = target[pc]
                continue
        elif code == P.WAIT_UP:
            yield faults.wait_up(i)
        elif code == P.EXCHANGE:
            duration = faults.exchange(i, J, seconds(pc))
            if duration is not None:
                yield env.timeout(duration)
                if faults.reachable(i, J):
                    X = duration
                    pc += 1
                    continue
            yield env.timeout(faults.timeout)
            faults.note_failed_attempt(last=A == len(neighbours) - 1)
            pc = target[pc]
            continue
        elif code == P.SET_ATTEMPT:
            A = 0
        elif code == P.NEXT_ATTEMPT:
            A += 1
            if A < len(neighbours):
                pc = target[pc]
                continue
        elif code == P.MESSAGE:
            arrival = faults.message(i, seconds(pc)) if faults.reachable(i, J) else None
            if arrival is None:
                # No acknowledgement: the sender keeps what it would have sent.
                faults.note_failed_attempt(last=True)
                pc = target[pc]
                continue
            X = arrival
        else:
            raise ValueError(f"program: unknown instruction {code} at {pc}")
        pc += 1


def _lock(which: int, i: int, j: int) -> int:
    """The node's own lock, or the lower / higher id of the pair (locks go in id order)."""
    if which == P.SELF:
        return i
    return min(i, j) if which == P.LOWER else max(i, j)


def _deliver(
    sim: Simulation, message: int, delay: float, inbox: Inbox | None, dest: int, step: int
) -> Generator[Any, object, None]:
    yield sim.env.timeout(delay)
    sim.submit(PushReceive(message))
    sim.count_interaction()
    if inbox is not None:
        inbox.arrive(dest, step)
