"""When things happen in one gradient-coding iteration: pure functions of the timing draws.

Timing never depends on model values, so an iteration's whole event list follows from the
per-slot compute durations ``D`` (``D[i, k]`` = time worker ``i`` needs for the ``k``-th chunk
it processes this iteration) and the message times. All times here are relative to the
moment ``0`` at which the PS starts broadcasting the model:

* the model reaches every worker at ``L_model``; worker ``i`` finishes its ``k``-th chunk at
  ``L_model + D[i, 0] + … + D[i, k]``;
* **uncoded / ignore_stragglers** — worker ``i`` processes chunk ``i`` (slot 0 only) and
  sends it; the PS waits for all ``n`` / the fastest ``n − s`` vectors;
* **fr / cr** — worker ``i`` processes all ``ℓ`` chunks and sends one coded vector; the PS
  decodes at the first arrival after which ``1`` lies in the row space of ``B_F``;
* **partial** — workers report progress (after every chunk, or every ``report_every``
  seconds when the count changed); the PS keeps the state vector from the reports that
  have *arrived*, and sends encode-and-transmit (with the state vector) when every chunk is
  covered (exact) or at the deadline, whichever comes first (approximate). Workers stop on
  the signal and send one coded vector each (those with a non-zero state); the PS decodes
  when the last of them arrives.

In the baselines a worker's unfinished work is abandoned when the next model arrives
(``decode_time + L_model``); chunks finished and not used are *wasted*. In the protocol a
worker stops when the signal arrives; chunks it finished after the state snapshot (or whose
report had not reached the PS) are wasted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gossipsim.algorithms.coding.encoding import Decoding, decode
from gossipsim.algorithms.coding.partial import covered

# Message kinds used in Schedule.messages
BROADCAST, REPORT, SIGNAL, CODED = "broadcast", "report", "signal", "coded"


@dataclass(frozen=True)
class MessageTimes:
    """Delivery time and size of each kind of message."""

    model: float
    report: float
    signal: float
    coded: float
    model_bits: int
    report_bits: int
    signal_bits: int
    coded_bits: int

    @classmethod
    def zero(cls, n: int = 1, d: int = 1) -> MessageTimes:
        """Instant messages (zero latency, infinite bandwidth) with the usual sizes."""
        return cls(0.0, 0.0, 0.0, 0.0, 64 * d, 32, 32 * n, 64 * d)


@dataclass
class Schedule:
    """The events of one iteration (times relative to the PS's model broadcast)."""

    decode_time: float
    senders: np.ndarray  # workers whose vectors the PS combines
    # (t, worker, slot, wasted) for every chunk a worker finishes
    chunk_events: list[tuple[float, int, int, bool]] = field(default_factory=list)
    # (send time, kind, number of messages, bits each)
    messages: list[tuple[float, str, int, int]] = field(default_factory=list)
    busy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # compute seconds per worker
    decoding: Decoding | None = None  # fr / cr
    state: np.ndarray | None = None  # partial: the state vector at the snapshot
    snapshot_time: float = math.nan  # partial: when the PS sent encode-and-transmit
    stop_time: float = math.inf  # when workers stop computing (next model / the signal)
    slots: int = 0  # slots a worker may process this iteration (1 for the uncoded baselines)

    def reached(self, D: np.ndarray, start: float) -> np.ndarray:
        """``(n, slots)`` bool: slot started before the workers stop (its duration matters)."""
        starts = start + np.cumsum(D, axis=1) - D
        reached = starts < self.stop_time
        reached[:, self.slots :] = False
        return reached

    @property
    def wasted_chunks(self) -> int:
        return sum(1 for *_, wasted in self.chunk_events if wasted)

    @property
    def computed_chunks(self) -> int:
        return len(self.chunk_events)


def _finish_times(D: np.ndarray, slots: int, start: float) -> np.ndarray:
    return start + np.cumsum(D[:, :slots], axis=1)


def baseline_schedule(
    scheme: str,
    D: np.ndarray,
    net: MessageTimes,
    B: np.ndarray | None = None,
    stragglers: int = 0,
) -> Schedule:
    """Schedule of uncoded, ignore_stragglers (``stragglers`` = s), fr or cr (``B`` given)."""
    n = D.shape[0]
    slots = 1 if scheme in ("uncoded", "ignore_stragglers") else D.shape[1]
    finish = _finish_times(D, slots, net.model)  # (n, slots)
    done = finish[:, -1]
    arrival = done + net.coded
    order = np.argsort(arrival, kind="stable")
    decoding = None
    if scheme == "uncoded":
        k = n
    elif scheme == "ignore_stragglers":
        k = n - stragglers
    elif scheme in ("fr", "cr"):
        if B is None:
            raise ValueError(f"scheme {scheme} needs an encoding matrix")
        k = 0
        while True:
            k += 1
            # Vectors arriving at the same instant are all in hand together.
            while k < n and arrival[order[k]] == arrival[order[k - 1]]:
                k += 1
            decoding = decode(B, order[:k])
            if decoding.exact or k >= n:
                break
    else:
        raise ValueError(f"unknown baseline scheme {scheme!r}")
    while k < n and arrival[order[k]] == arrival[order[k - 1]]:
        k += 1
    senders = np.sort(order[:k])
    decode_time = float(arrival[order[k - 1]])
    abort = decode_time + net.model  # the next model reaches the workers
    schedule = Schedule(decode_time, senders, decoding=decoding, stop_time=abort, slots=slots)
    schedule.messages.append((0.0, BROADCAST, n, net.model_bits))
    used = np.zeros(n, dtype=bool)
    used[senders] = True
    busy = np.zeros(n)
    for i in range(n):
        for slot, t in enumerate(finish[i]):
            if t <= abort:
                schedule.chunk_events.append((float(t), i, slot, not used[i]))
        busy[i] = min(done[i], abort) - net.model
        if done[i] <= abort:
            schedule.messages.append((float(done[i]), CODED, 1, net.coded_bits))
    schedule.busy = busy
    schedule.chunk_events.sort()
    schedule.messages.sort()
    return schedule


def report_events(
    D: np.ndarray, net: MessageTimes, report_every: float
) -> list[tuple[float, float, int, int]]:
    """Progress reports as ``(arrival, send, worker, count)``, sorted by arrival.

    ``report_every = 0``: a report after each chunk. Otherwise at multiples of
    ``report_every`` after the worker started, when its count changed since the last one.
    """
    n, slots = D.shape
    finish = _finish_times(D, slots, net.model)
    events: list[tuple[float, float, int, int]] = []
    for i in range(n):
        if report_every <= 0:
            sends = [(float(t), k + 1) for k, t in enumerate(finish[i])]
        else:
            ticks = np.ceil((finish[i] - net.model) / report_every) * report_every + net.model
            # Guard against round-off putting a tick a hair before its chunk's finish.
            ticks = np.maximum(ticks, finish[i])
            sends = []
            for k, tick in enumerate(ticks):
                if sends and sends[-1][0] == float(tick):
                    sends[-1] = (float(tick), k + 1)
                else:
                    sends.append((float(tick), k + 1))
        events.extend((t + net.report, t, i, count) for t, count in sends)
    events.sort()
    return events


def partial_schedule(
    D: np.ndarray,
    pos: np.ndarray,
    net: MessageTimes,
    report_every: float = 0.0,
    deadline: float | None = None,
) -> Schedule:
    """Schedule of the partial-straggler protocol (``deadline`` set = approximate recovery)."""
    n, slots = D.shape
    finish = _finish_times(D, slots, net.model)
    reports = report_events(D, net, report_every)
    state = np.zeros(n, dtype=np.int64)
    snapshot = math.inf
    index = 0
    while index < len(reports):
        arrival = reports[index][0]
        if deadline is not None and arrival > deadline:
            break
        while index < len(reports) and reports[index][0] == arrival:
            _, _, worker, count = reports[index]
            state[worker] = max(state[worker], count)
            index += 1
        if covered(pos, state).all():
            snapshot = arrival
            break
    if math.isinf(snapshot):
        if deadline is None:
            raise ValueError(
                "the chunks are not all held by some worker; exact recovery is impossible"
            )
        snapshot = float(deadline)
    stop = snapshot + net.signal  # the signal reaches the workers
    senders = np.flatnonzero(state > 0)
    decode_time = stop + net.coded if senders.size else snapshot
    schedule = Schedule(
        decode_time, senders, state=state, snapshot_time=snapshot, stop_time=stop, slots=slots
    )
    schedule.messages.append((0.0, BROADCAST, n, net.model_bits))
    for _, send, _, _ in reports:
        if send <= stop:
            schedule.messages.append((send, REPORT, 1, net.report_bits))
    schedule.messages.append((snapshot, SIGNAL, n, net.signal_bits))
    if senders.size:
        schedule.messages.append((stop, CODED, int(senders.size), net.coded_bits))
    busy = np.zeros(n)
    for i in range(n):
        for k, t in enumerate(finish[i]):
            if t <= stop:
                schedule.chunk_events.append((float(t), i, k, k >= state[i]))
        busy[i] = min(finish[i, -1], stop) - net.model if stop > net.model else 0.0
    schedule.busy = busy
    schedule.chunk_events.sort()
    schedule.messages.sort()
    return schedule


def coverage_times(C: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Time at which every chunk is first covered, for a batch of scenarios.

    ``C[k, i, s]`` is when worker ``i`` finishes its slot ``s`` in scenario ``k`` (cumulative
    durations); ``pos`` gives the slot of each held chunk. No network delays: this is the
    exact-recovery snapshot time of the protocol with instant messages.
    """
    workers, chunks = np.nonzero(pos < C.shape[2])
    K, n = C.shape[0], C.shape[1]
    m = pos.shape[1]
    times = np.full((K, n, m), np.inf)
    times[:, workers, chunks] = C[:, workers, pos[workers, chunks]]
    return times.min(axis=1).max(axis=1)
