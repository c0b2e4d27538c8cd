"""Node programs: what a node does, written once, as a short program over a fixed instruction set.

An asynchronous algorithm describes one node (or the PS) as a list of instructions, read
top to bottom like its paper's pseudocode: draw H, take the own lock, compute, log the
local steps, pick a neighbour, lock both, exchange, log the average, loop. Two executors
interpret the same resolved program:

* :func:`gossipsim.engine.interpreter.node_process`, a SimPy process (the reference: one
  operation at a time, SimPy's own environment and resources);
* :mod:`gossipsim.engine.compiled`, a numba event loop with SimPy's ordering that logs the
  operations for the batched executor's waves (the fast path).

Each node has a few registers: ``H`` (local steps of this round), ``J`` (the partner or
peer), ``L`` (the link to ``J``, set with it by every pick), ``T`` (a marked instant),
``D`` (a drawn compute duration), ``X`` (the duration of the last exchange or message),
``K`` (the node's iteration count) and ``A`` (the attempt number of a retried exchange).

Push-sum messages carry the sender's iteration count. ``AWAIT_MESSAGES`` blocks a node
until it has every message sent to it up to a step (the bounded staleness of SGP); the
number it is owed comes from the deterministic peer schedule (:func:`in_schedule`). A
message from a later step that arrives early is added in at once, as any push-sum
message is. With faults a node waits at most the fault timeout (counted as a timeout);
it then stops expecting the messages still missing, and adds them in if they come later.

Durations. Every instruction that takes a duration (``WAIT``, ``ADD_COMM``, ``SEND``,
``EXCHANGE``, ``MESSAGE``) takes either a constant or :class:`OverLink`: messages of given
sizes sent over the link to ``J``, ``latency + bits / bandwidth`` each with that link's
values (:class:`gossipsim.system.timing.Network`). :meth:`Program.resolve` turns an
``OverLink`` into a constant when every link is alike (so a uniform network runs exactly
the constants it always did), and otherwise into a row of a table with one entry per link
slot: the directed edges of the neighbour tables in order (slot ``offset[i] + k`` is the
link from ``i`` to ``neighbours[i][k]``), then, for programs with exponential peers,
``n·cycle`` slots (``base + i·cycle + k``: the link to the peer 2^k ahead). Both
interpreters read ``table[row, L]``: one lookup, the same IEEE doubles.

Instructions that only make sense with faults carry ``when=FAULTS`` (or ``NO_FAULTS`` for
their fault-free counterpart); :meth:`Program.resolve` keeps the ones that apply to a run,
so a fault-free run interprets no fault checks at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gossipsim.engine.batched import (
    APPLY,
    BUFFER,
    LOCAL,
    PAIR,
    PUSH_RECEIVE,
    PUSH_SEND,
    PUSH_STEP,
    SNAPSHOT,
)

__all__ = [
    "ALWAYS",
    "FAULTS",
    "NO_FAULTS",
    "Instruction",
    "expected_messages",
    "in_schedule",
    "Program",
    "Resolved",
]

# -- the instruction set -----------------------------------------------------------------------
# Straight-line instructions (the node goes on at once):
DRAW_STEPS = 0  # H ← the next local-steps draw (fixed value or geometric)
SET_STEPS = 1  # H ← arg
PICK_NEIGHBOUR = 2  # J ← a uniformly random neighbour in the topology (pairing stream)
PICK_EXPONENTIAL_PEER = 3  # J ← i + 2^(K mod ⌈log2 n⌉) mod n (SGP's exponential graph)
NEXT_ITERATION = 4  # K ← K + 1
MARK = 5  # T ← now
ADD_IDLE_SINCE_MARK = 6  # idle time += now − T
DRAW_DURATION = 7  # D ← compute time of H steps (the timing stream), without waiting
ADD_COMM = 8  # communication time += constant
ADD_COMM_X = 9  # communication time += arg · X
LOG = 10  # log the operation ``arg`` (a code of the batched executor) on this node
COUNT_STEPS = 11  # H local steps done (the epochs stop rule)
COUNT_INTERACTION = 12  # one interaction done (the interactions stop rule)
RELEASE = 13  # release lock ``arg`` (SELF, LOWER, HIGHER)
SEND = 14  # push-sum: send half to J; it arrives after constant seconds (a delivery process)
SEND_X = 15  # the same, arriving after X seconds
JUMP = 16  # go to ``target``
# Instructions that wait (the node resumes at the next instruction):
ACQUIRE = 17  # request lock ``arg`` and wait until it is granted
COMPUTE = 18  # wait for the compute time of H steps (the timing stream)
WAIT = 19  # wait a constant time
WAIT_REST = 20  # wait max(0, D − (now − T)): the rest of a computation started at T
# Fault instructions (they consult the run's fault model):
IF_UP = 21  # go to ``target`` if this node is up
IF_DOWN = 22  # go to ``target`` if this node is down
WAIT_UP = 23  # wait until this node is back up
EXCHANGE = 24  # a two-message exchange with J taking a constant (X ← its time), or fail:
#                after the fault timeout, count it and go to ``target``
SET_ATTEMPT = 25  # A ← 0
NEXT_ATTEMPT = 26  # A ← A + 1; go to ``target`` while A < the node's degree
MESSAGE = 27  # one message to J taking a constant (X ← its time) or, lost, go to ``target``
# Push-sum on a fixed schedule (SGP with a configured topology and bounded staleness):
PICK_NEXT_NEIGHBOUR = 28  # J ← the node's sorted neighbours[K mod degree] (straight-line)
AWAIT_MESSAGES = 29  # wait until every message sent to this node at a step ≤ K − 1 − arg
#                      has arrived (with faults: at most the fault timeout, then give up
#                      on the missing ones)

NAMES = (
    "DRAW_STEPS",
    "SET_STEPS",
    "PICK_NEIGHBOUR",
    "PICK_EXPONENTIAL_PEER",
    "NEXT_ITERATION",
    "MARK",
    "ADD_IDLE_SINCE_MARK",
    "DRAW_DURATION",
    "ADD_COMM",
    "ADD_COMM_X",
    "LOG",
    "COUNT_STEPS",
    "COUNT_INTERACTION",
    "RELEASE",
    "SEND",
    "SEND_X",
    "JUMP",
    "ACQUIRE",
    "COMPUTE",
    "WAIT",
    "WAIT_REST",
    "IF_UP",
    "IF_DOWN",
    "WAIT_UP",
    "EXCHANGE",
    "SET_ATTEMPT",
    "NEXT_ATTEMPT",
    "MESSAGE",
    "PICK_NEXT_NEIGHBOUR",
    "AWAIT_MESSAGES",
)  # by code
assert NAMES.index("AWAIT_MESSAGES") == AWAIT_MESSAGES
WAITING = frozenset({ACQUIRE, COMPUTE, WAIT, WAIT_REST, WAIT_UP, EXCHANGE, AWAIT_MESSAGES})
# Instructions that only the SimPy interpreter runs (they consult the fault model or its X).
FAULT_ONLY = frozenset(
    {IF_UP, IF_DOWN, WAIT_UP, EXCHANGE, SET_ATTEMPT, NEXT_ATTEMPT, MESSAGE, ADD_COMM_X, SEND_X}
)
# Which lock ACQUIRE / RELEASE mean: the node's own, or the lower / higher id of {i, J}.
SELF, LOWER, HIGHER = 0, 1, 2
# The operations a node may log, by name (codes of the batched executor's log).
OPERATIONS = {
    "local_steps": LOCAL,
    "pair_average": PAIR,
    "buffer_exchange": BUFFER,
    "gradient_snapshot": SNAPSHOT,
    "apply_gradient": APPLY,
    "push_sum_step": PUSH_STEP,
    "push_send": PUSH_SEND,
    "push_receive": PUSH_RECEIVE,
}

ALWAYS, FAULTS, NO_FAULTS = "always", "faults", "no_faults"


# Instructions whose argument is a duration (a constant, or messages over the link to J).
DURATIONS = frozenset({WAIT, ADD_COMM, SEND, EXCHANGE, MESSAGE})


@dataclass(frozen=True)
class OverLink:
    """Messages sent one after another over the link to ``J``, ``times`` over:
    ``times · Σ_k (latency + bits_k / bandwidth)`` with the link's latency and bandwidth."""

    bits: tuple[float, ...]
    times: float = 1.0

    def seconds(self, latency: float, bandwidth: float) -> float:
        total = 0.0
        for bits in self.bits:
            total += latency + float(bits) / bandwidth
        return total if self.times == 1.0 else self.times * total


def over_link(*bits: float, times: float = 1.0) -> OverLink:
    """The duration of messages of ``bits`` over the link to the partner or peer."""
    return OverLink(tuple(float(b) for b in bits), float(times))


Duration = float | OverLink


@dataclass(frozen=True)
class Instruction:
    """One instruction: its code, an integer or duration argument, a jump target label."""

    op: int
    arg: float | OverLink = 0
    target: str | None = None
    when: str = ALWAYS
    label: str | None = None  # a label placed on this instruction


@dataclass(frozen=True)
class Resolved:
    """A program with the instructions of one run, labels turned into positions.

    ``op``, ``arg`` (an integer argument; for a duration an index into ``constants``, or
    ``-(r + 1)`` for row ``r`` of ``linked``, one entry per link slot) and ``target`` are
    what both interpreters read. ``exponential_base`` is the first link slot of the
    exponential peers.
    """

    op: np.ndarray
    arg: np.ndarray
    target: np.ndarray
    constants: np.ndarray
    linked: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))
    exponential_base: int = 0

    def __len__(self) -> int:
        return int(self.op.shape[0])

    def seconds(self, pc: int, link: int) -> float:
        """The duration argument of instruction ``pc`` for a node whose ``L`` is ``link``."""
        a = int(self.arg[pc])
        return float(self.constants[a] if a >= 0 else self.linked[-a - 1, link])

    def listing(self) -> str:
        """The program as text, one instruction a line (for docs and debugging)."""
        lines = []
        for pc in range(len(self)):
            op = int(self.op[pc])
            text = f"{pc:3d} {NAMES[op]}"
            if op in DURATIONS:
                a = int(self.arg[pc])
                text += f" {self.constants[a]:g}" if a >= 0 else f" link-table row {-a - 1}"
            elif op in (SET_STEPS, ADD_COMM_X, ACQUIRE, RELEASE, LOG, AWAIT_MESSAGES):
                text += f" {int(self.arg[pc])}"
            if self.target[pc] >= 0:
                text += f" -> {int(self.target[pc])}"
            lines.append(text)
        return "\n".join(lines)


@dataclass
class Program:
    """A node's behaviour: instructions, plus what the node needs from the run.

    ``local_steps`` is the algorithm's H (a fixed or geometric config; None when the
    program never draws H), ``locks`` whether nodes lock each other (blocking exchanges),
    ``push_sum`` whether the executor keeps push-sum numerators and weights, ``buffers``
    whether it keeps non-blocking communication buffers.
    """

    instructions: list[Instruction]
    local_steps: object = None
    locks: bool = False
    push_sum: bool = False
    buffers: bool = False
    constants: list[float] = field(default_factory=list)

    def resolve(
        self,
        faults: bool,
        network: Any = None,
        links: tuple[np.ndarray, np.ndarray] | None = None,
        exponential_base: int = 0,
    ) -> Resolved:
        """The instructions that apply to a run with (or without) faults, labels resolved.

        ``links`` (latency and bandwidth per link slot, :func:`link_slots`) makes each
        :class:`OverLink` a row of the link table; without it an ``OverLink`` is a constant
        with ``network``'s latency and bandwidth (every link alike).
        """
        keep: list[Instruction] = []
        positions: dict[str, int] = {}
        for ins in self.instructions:
            if ins.label is not None:
                # A label on a dropped instruction marks the next instruction kept.
                positions[ins.label] = len(keep)
            if ins.when == ALWAYS or (ins.when == FAULTS) == faults:
                keep.append(ins)
        constants: list[float] = []
        rows: list[np.ndarray] = []
        op = np.zeros(len(keep), dtype=np.int64)
        arg = np.zeros(len(keep), dtype=np.int64)
        target = np.full(len(keep), -1, dtype=np.int64)
        for pc, ins in enumerate(keep):
            op[pc] = ins.op
            if ins.op in DURATIONS:
                duration = ins.arg
                if isinstance(duration, OverLink) and links is not None:
                    latency, bandwidth = links
                    rows.append(
                        np.array(
                            [
                                duration.seconds(a, b)
                                for a, b in zip(latency.tolist(), bandwidth.tolist(), strict=True)
                            ],
                            dtype=np.float64,
                        )
                    )
                    arg[pc] = -len(rows)
                    continue
                if isinstance(duration, OverLink):
                    if network is None:
                        raise ValueError("program: a duration over a link needs the network")
                    duration = duration.seconds(network.latency, network.bandwidth)
                constants.append(float(duration))
                arg[pc] = len(constants) - 1
            else:
                assert not isinstance(ins.arg, OverLink)
                arg[pc] = int(ins.arg)
        for pc, ins in enumerate(keep):
            if ins.target is not None:
                if positions.get(ins.target, len(keep)) >= len(keep):
                    raise ValueError(f"program: jump to unknown label {ins.target!r}")
                target[pc] = positions[ins.target]
        if len(keep) == 0 or keep[-1].op != JUMP:
            raise ValueError("program: a node program must end with a jump (nodes loop forever)")
        linked = np.vstack(rows) if rows else np.zeros((1, 1))
        return Resolved(
            op,
            arg,
            target,
            np.array(constants + [0.0], dtype=np.float64),
            np.ascontiguousarray(linked),
            exponential_base,
        )

    @property
    def exponential(self) -> bool:
        """Whether the program picks exponential peers (they have link slots of their own)."""
        return any(ins.op == PICK_EXPONENTIAL_PEER for ins in self.instructions)


def exponential_cycle(n: int) -> int:
    """⌈log2 n⌉ (at least 1): how many exponential peers a node cycles through."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def link_slots(
    network: Any, neighbours: list[np.ndarray], exponential: bool
) -> tuple[tuple[np.ndarray, np.ndarray] | None, int]:
    """Latency and bandwidth per link slot (None when every link is alike), and the first
    slot of the exponential peers (the neighbour tables' directed edges come first)."""
    base = sum(len(table) for table in neighbours)
    if network is None or network.uniform:
        return None, base
    latency, bandwidth = network.neighbour_links(neighbours)
    if exponential:
        n = len(neighbours)
        cycle = exponential_cycle(n)
        peers = [(i, (i + 2**k) % n) for i in range(n) for k in range(cycle)]
        more = network.link_values(peers)
        latency = np.concatenate([latency, more[0]])
        bandwidth = np.concatenate([bandwidth, more[1]])
    return (latency, bandwidth), base


# -- the instructions as they read in an algorithm's module ------------------------------------


def label(name: str, instruction: Instruction) -> Instruction:
    """``instruction`` with a label other instructions can jump to."""
    return Instruction(instruction.op, instruction.arg, instruction.target, instruction.when, name)


def draw_local_steps() -> Instruction:
    return Instruction(DRAW_STEPS)


def set_steps(steps: int) -> Instruction:
    return Instruction(SET_STEPS, steps)


def pick_neighbour() -> Instruction:
    return Instruction(PICK_NEIGHBOUR)


def pick_exponential_peer() -> Instruction:
    return Instruction(PICK_EXPONENTIAL_PEER)


def pick_next_neighbour() -> Instruction:
    return Instruction(PICK_NEXT_NEIGHBOUR)


def await_messages(staleness: int) -> Instruction:
    return Instruction(AWAIT_MESSAGES, staleness)


def next_iteration() -> Instruction:
    return Instruction(NEXT_ITERATION)


def mark() -> Instruction:
    return Instruction(MARK)


def add_idle_since_mark() -> Instruction:
    return Instruction(ADD_IDLE_SINCE_MARK)


def draw_duration() -> Instruction:
    return Instruction(DRAW_DURATION)


def add_comm(seconds: Duration, when: str = ALWAYS) -> Instruction:
    return Instruction(ADD_COMM, seconds, when=when)


def add_comm_exchanged(times: int, when: str = FAULTS) -> Instruction:
    return Instruction(ADD_COMM_X, times, when=when)


def log(operation: str) -> Instruction:
    return Instruction(LOG, OPERATIONS[operation])


def count_steps() -> Instruction:
    return Instruction(COUNT_STEPS)


def count_interaction() -> Instruction:
    return Instruction(COUNT_INTERACTION)


def acquire(lock: int) -> Instruction:
    return Instruction(ACQUIRE, lock)


def release(lock: int, when: str = ALWAYS) -> Instruction:
    return Instruction(RELEASE, lock, when=when)


def send(seconds: Duration, when: str = ALWAYS) -> Instruction:
    return Instruction(SEND, seconds, when=when)


def send_exchanged(when: str = FAULTS) -> Instruction:
    return Instruction(SEND_X, when=when)


def jump(target: str, when: str = ALWAYS) -> Instruction:
    return Instruction(JUMP, target=target, when=when)


def compute() -> Instruction:
    return Instruction(COMPUTE)


def wait(seconds: Duration, when: str = ALWAYS) -> Instruction:
    return Instruction(WAIT, seconds, when=when)


def wait_rest() -> Instruction:
    return Instruction(WAIT_REST)


def if_up(target: str) -> Instruction:
    return Instruction(IF_UP, target=target, when=FAULTS)


def if_down(target: str) -> Instruction:
    return Instruction(IF_DOWN, target=target, when=FAULTS)


def wait_up() -> Instruction:
    return Instruction(WAIT_UP, when=FAULTS)


def exchange(seconds: Duration, failed: str) -> Instruction:
    return Instruction(EXCHANGE, seconds, target=failed, when=FAULTS)


def set_attempt() -> Instruction:
    return Instruction(SET_ATTEMPT, when=FAULTS)


def next_attempt(retry: str) -> Instruction:
    return Instruction(NEXT_ATTEMPT, target=retry, when=FAULTS)


def message(seconds: Duration, lost: str) -> Instruction:
    return Instruction(MESSAGE, seconds, target=lost, when=FAULTS)


# -- the push schedule of a program (what AWAIT_MESSAGES waits for) ------------------------------


def in_schedule(resolved: Resolved, neighbours: list[np.ndarray]) -> list[list[tuple[int, int]]]:
    """Per receiver, its in-edges as ``(offset, period)``: a sender pushes to it at steps
    ``offset, offset + period, …`` (of the sender's iteration count).

    The peer schedule is deterministic (``PICK_EXPONENTIAL_PEER`` or ``PICK_NEXT_NEIGHBOUR``),
    so every node knows how many messages it is owed from the steps up to s:
    :func:`expected_messages`.
    """
    n = len(neighbours)
    ops = set(resolved.op.tolist())
    edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    if PICK_NEXT_NEIGHBOUR in ops:
        for table in neighbours:
            for offset, receiver in enumerate(table.tolist()):
                edges[receiver].append((offset, len(table)))
    elif PICK_EXPONENTIAL_PEER in ops:
        cycle = max(1, math.ceil(math.log2(n))) if n > 1 else 1
        for sender in range(n):
            for offset in range(cycle):
                edges[(sender + 2**offset) % n].append((offset, cycle))
    else:
        raise ValueError("program: AWAIT_MESSAGES needs a deterministic peer schedule")
    return edges


def expected_messages(edges: list[tuple[int, int]], step: int) -> int:
    """How many messages a receiver with in-edges ``edges`` is sent at steps 0 … ``step``."""
    return sum((step - offset) // period + 1 for offset, period in edges if step >= offset)
