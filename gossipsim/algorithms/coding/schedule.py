"""When things happen in one gradient-coding iteration: pure functions of the timing draws.

Timing never depends on model values, so an iteration's whole event list follows from the
per-slot compute durations ``D`` (``D[i, k]`` = time worker ``i`` needs for the ``k``-th chunk
it processes this iteration) and the message times. All times here are relative to the
moment ``0`` at which the PS starts broadcasting the model:

* the model reaches every worker at ``L_model``; worker ``i`` finishes its ``k``-th chunk at
  ``L_model + D[i, 0] + … + D[i, k]``;
* **uncoded / ignore_stragglers** — worker ``i`` processes chunk ``i`` (slot 0 only) and
  sends it; the PS waits for all ``n`` / the fastest ``n − s`` vectors;
* **fr / cr / original** — worker ``i`` processes all ``δ_i`` of its chunks and sends one
  coded vector; the PS decodes at the first arrival after which the vectors in hand
  decode (:func:`.encoding.first_decodable`). With a deadline (approximate recovery) it
  decodes at the deadline at the latest, by least squares from the vectors arrived by then;
* **partial** — workers report progress (after every chunk, or every ``report_every``
  seconds when the count changed); the PS keeps the state vector from the reports that
  have *arrived*, and sends encode-and-transmit (with the state vector) when every chunk
  has ``≥ ℓ`` processed copies (exact) or at the deadline, whichever comes first
  (approximate). Workers stop on the signal and send one coded vector each (those with a
  non-zero state); the PS decodes when the last of them arrives.

Workers may hold different numbers of chunks (``loads``; matrix assignments): ``D`` has a
column per slot of the most loaded worker and worker ``i`` uses its first ``δ_i``.

In the baselines a worker's unfinished work is abandoned when the next model arrives
(``decode_time + L_model``); chunks finished and not used are *wasted*. In the protocol a
worker stops when the signal arrives; chunks it finished after the state snapshot (or whose
report had not reached the PS) are wasted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gossipsim.algorithms.coding import kernels as coding_kernels
from gossipsim.algorithms.coding.encoding import Decoding, decode_blocks, first_decodable

# Message kinds used in Schedule.messages
BROADCAST, REPORT, SIGNAL, CODED = "broadcast", "report", "signal", "coded"


HEADER_BITS = 64  # a coded vector's header (sender, iteration): integers, whatever the floats


def coded_bits(d: int, parts: int = 1, float_bits: int = 32) -> int:
    """Bits of one coded vector: ``⌈d/ℓ⌉`` floats of ``float_bits`` bits and a header."""
    return float_bits * (-(-d // parts)) + HEADER_BITS


@dataclass(frozen=True)
class MessageTimes:
    """Delivery time and size of each kind of message.

    The times are numbers (every PS–worker link alike) or, with per-link networks, arrays
    with one entry per worker (over that worker's link to the PS); :attr:`per_worker` tells.
    Message rows then carry a fifth column, the seconds they take in all (for the
    communication-time counter).
    """

    model: float | np.ndarray
    report: float | np.ndarray
    signal: float | np.ndarray
    coded: float | np.ndarray
    model_bits: int
    report_bits: int
    signal_bits: int
    coded_bits: int

    @property
    def per_worker(self) -> bool:
        return isinstance(self.model, np.ndarray)

    @cached_property
    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :func:`.kernels.partial_events` takes of these: the model, report, signal
        and coded-vector times as a ``(4, 1)`` array (``(4, n)`` per link), their sizes in
        bits, and the seconds of the broadcast and of the signal to all (per link)."""
        kinds = (self.model, self.report, self.signal, self.coded)
        sizes = (self.model_bits, self.report_bits, self.signal_bits, self.coded_bits)
        bits = np.array(sizes, dtype=np.float64)
        if self.per_worker:
            n = np.asarray(self.model).size
            totals = np.array([_total(self.model, n), _total(self.signal, n)])
            return np.array(kinds, dtype=np.float64), bits, totals
        return np.array([[t] for t in kinds], dtype=np.float64), bits, np.zeros(2)

    @classmethod
    def zero(cls, n: int = 1, d: int = 1, parts: int = 1, float_bits: int = 32) -> MessageTimes:
        """Instant messages (zero latency, infinite bandwidth) with the usual sizes."""
        return cls(
            0.0,
            0.0,
            0.0,
            0.0,
            float_bits * d,
            float_bits,
            float_bits * n,
            coded_bits(d, parts, float_bits),
        )


def _col(x: float | np.ndarray) -> float | np.ndarray:
    """A per-worker time as a column (it broadcasts over slots); a number as it is."""
    return x[:, None] if isinstance(x, np.ndarray) else x


def _of(x: float | np.ndarray, i: int) -> float:
    return float(x[i]) if isinstance(x, np.ndarray) else x


def _total(x: float | np.ndarray, n: int) -> float:
    """Seconds of one message to every worker."""
    return float(np.sum(x)) if isinstance(x, np.ndarray) else n * x


#: Message kinds as codes in the arrays, in the (alphabetical) order of their names, so
#: sorting by code sorts as the names do.
KIND_CODES = {
    BROADCAST: coding_kernels.BROADCAST_CODE,
    CODED: coding_kernels.CODED_CODE,
    REPORT: coding_kernels.REPORT_CODE,
    SIGNAL: coding_kernels.SIGNAL_CODE,
}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    """Rows sorted lexicographically by their columns (as a list of tuples would sort)."""
    if rows.shape[0] < 2:
        return rows
    return rows[np.lexsort(rows.T[::-1])]


@dataclass
class Schedule:
    """The events of one iteration (times relative to the PS's model broadcast).

    The events are kept as arrays (unsorted): ``chunk_array`` rows ``(t, worker, slot,
    wasted)`` for every chunk a worker finishes, ``message_array`` rows ``(send time, kind
    code, number of messages, bits each)``; ``chunk_events`` and ``messages`` give them as
    sorted lists of tuples.
    """

    decode_time: float
    senders: np.ndarray  # workers whose vectors the PS combines
    busy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # compute seconds per worker
    decoding: Decoding | None = None  # fr / cr
    state: np.ndarray | None = None  # partial: the state vector at the snapshot
    snapshot_time: float = math.nan  # partial: when the PS sent encode-and-transmit
    # When workers stop computing (next model / the signal): per worker with per-link times.
    stop_time: float | np.ndarray = math.inf
    slots: int = 0  # slots a worker may process this iteration (1 for the uncoded baselines)
    chunk_array: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    message_array: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def set_chunks(self, rows: np.ndarray) -> None:
        """Set the chunk events (any order; the list view sorts them)."""
        self.chunk_array = np.asarray(rows, dtype=np.float64).reshape(-1, 4)

    def set_messages(self, rows: list[tuple] | np.ndarray, columns: int = 4) -> None:
        """Set the messages (any order; the list view sorts them). ``columns = 5``: each row
        also has the seconds its messages take in all (per-link networks)."""
        if isinstance(rows, list):
            rows = np.array([(r[0], KIND_CODES[r[1]], *r[2:]) for r in rows], dtype=float)
        self.message_array = np.asarray(rows, dtype=np.float64).reshape(-1, columns)

    @property
    def message_rows(self) -> np.ndarray:
        """The message rows (all their columns), sorted."""
        return _sorted_rows(self.message_array)

    @property
    def chunk_events(self) -> list[tuple[float, int, int, bool]]:
        """``(t, worker, slot, wasted)`` per finished chunk, sorted."""
        rows = _sorted_rows(self.chunk_array).tolist()
        return [(t, int(i), int(k), bool(w)) for t, i, k, w in rows]

    @property
    def messages(self) -> list[tuple[float, str, int, int]]:
        """``(send time, kind, number of messages, bits each)``, sorted."""
        return [
            (t, KIND_NAMES[int(code)], int(count), int(bits))
            for t, code, count, bits, *_ in _sorted_rows(self.message_array).tolist()
        ]

    def reached(self, D: np.ndarray, start: float | np.ndarray) -> np.ndarray:
        """``(n, slots)`` bool: slot started before the workers stop (its duration matters)."""
        starts = _col(start) + np.cumsum(D, axis=1) - D
        reached = starts < _col(self.stop_time)
        reached[:, self.slots :] = False
        return reached

    @property
    def wasted_chunks(self) -> int:
        return int(self.chunk_array[:, 3].sum())

    @property
    def computed_chunks(self) -> int:
        return int(self.chunk_array.shape[0])


def _finish_times(D: np.ndarray, slots: int, start: float | np.ndarray) -> np.ndarray:
    return _col(start) + np.cumsum(D[:, :slots], axis=1)


def _loads(D: np.ndarray, loads: np.ndarray | None) -> np.ndarray:
    if loads is None:
        return np.full(D.shape[0], D.shape[1], dtype=np.int64)
    return np.asarray(loads, dtype=np.int64)


def baseline_schedule(
    scheme: str,
    D: np.ndarray,
    net: MessageTimes,
    B: np.ndarray | None = None,
    stragglers: int = 0,
    loads: np.ndarray | None = None,
    deadline: float | None = None,
) -> Schedule:
    """Schedule of uncoded, ignore_stragglers (``stragglers`` = s) or an original code
    (fr / cr / original: ``B`` given, ``(n, m)`` for ℓ = 1 or ``(n, m, ℓ)``).

    ``deadline`` (original codes only): decode at the deadline at the latest, from the
    vectors that have arrived by then."""
    n = D.shape[0]
    slots = 1 if scheme in ("uncoded", "ignore_stragglers") else D.shape[1]
    loads = np.ones(n, dtype=np.int64) if slots == 1 else _loads(D, loads)
    finish = _finish_times(D, slots, net.model)  # (n, slots)
    done = finish[np.arange(n), loads - 1]
    arrival = done + net.coded
    order = np.argsort(arrival, kind="stable")
    decoding = None
    decode_time = math.nan
    if scheme == "uncoded":
        k = n
    elif scheme == "ignore_stragglers":
        k = n - stragglers
    elif scheme in ("fr", "cr", "original"):
        if B is None:
            raise ValueError(f"scheme {scheme} needs an encoding matrix")
        code = B[:, :, None] if B.ndim == 2 else B
        # Vectors arriving at the same instant are all in hand together: candidate sets end
        # where the arrival time changes.
        arrived = arrival[order]
        ends = [k for k in range(1, n + 1) if k == n or arrived[k] != arrived[k - 1]]
        ends = [k for k in ends if np.isfinite(arrived[k - 1])] or [n]
        decoding = first_decodable(code, order, ends)
        if decoding is not None:
            k = decoding.rows.size
            decode_time = float(arrived[k - 1])
        if deadline is not None and (decoding is None or decode_time > deadline):
            k = int(np.searchsorted(arrived, deadline, side="right"))
            decoding = decode_blocks(code, order[:k])
            decode_time = float(deadline)
        elif decoding is None:
            decoding = decode_blocks(code, order)
            k = n
    else:
        raise ValueError(f"unknown baseline scheme {scheme!r}")
    if math.isnan(decode_time):
        while k < n and arrival[order[k]] == arrival[order[k - 1]]:
            k += 1
        decode_time = float(arrival[order[k - 1]])
    senders = np.sort(order[:k])
    abort = decode_time + net.model  # the next model reaches the workers
    schedule = Schedule(decode_time, senders, decoding=decoding, stop_time=abort, slots=slots)
    per_worker = net.per_worker
    messages: list[tuple] = [(0.0, BROADCAST, n, net.model_bits)]
    if per_worker:
        messages = [(0.0, BROADCAST, n, net.model_bits, _total(net.model, n))]
    used = np.zeros(n, dtype=bool)
    used[senders] = True
    chunks = []
    for i in range(n):
        abort_i = _of(abort, i)
        for slot, t in enumerate(finish[i, : loads[i]]):
            if t <= abort_i:
                chunks.append((float(t), i, slot, not used[i]))
        if done[i] <= abort_i:
            row = (float(done[i]), CODED, 1, net.coded_bits)
            messages.append((*row, _of(net.coded, i)) if per_worker else row)
    schedule.busy = np.minimum(done, abort) - net.model
    schedule.set_chunks(np.array(chunks, dtype=np.float64))
    schedule.set_messages(messages, 5 if per_worker else 4)
    return schedule


def report_events(
    D: np.ndarray, net: MessageTimes, report_every: float, loads: np.ndarray | None = None
) -> list[tuple[float, float, int, int]]:
    """Progress reports as ``(arrival, send, worker, count)``, sorted by arrival.

    ``report_every = 0``: a report after each chunk. Otherwise at multiples of
    ``report_every`` after the worker started, when its count changed since the last one.
    Chunks that never finish (``D`` infinite: a crashed worker) are never reported.
    """
    n, slots = D.shape
    loads = _loads(D, loads)
    finish = _finish_times(D, slots, net.model)
    events: list[tuple[float, float, int, int]] = []
    for i in range(n):
        own = finish[i, : loads[i]]
        own = own[np.isfinite(own)]
        if report_every <= 0:
            sends = [(float(t), k + 1) for k, t in enumerate(own)]
        else:
            model = _of(net.model, i)
            ticks = np.ceil((own - model) / report_every) * report_every + model
            # Guard against round-off putting a tick a hair before its chunk's finish.
            ticks = np.maximum(ticks, own)
            sends = []
            for k, tick in enumerate(ticks):
                if sends and sends[-1][0] == float(tick):
                    sends[-1] = (float(tick), k + 1)
                else:
                    sends.append((float(tick), k + 1))
        report = _of(net.report, i)
        events.extend((t + report, t, i, count) for t, count in sends)
    events.sort()
    return events


def partial_schedule(
    D: np.ndarray,
    pos: np.ndarray,
    net: MessageTimes,
    report_every: float = 0.0,
    deadline: float | None = None,
    parts: int = 1,
    loads: np.ndarray | None = None,
) -> Schedule:
    """Schedule of the partial-straggler protocol (``deadline`` set = approximate recovery).

    Worker ``i`` finishes slot ``k`` at ``L_model + D[i, 0] + … + D[i, k]`` and reports it
    then (or at the next multiple of ``report_every`` after it started); the PS knows of it
    a report's delivery later. Chunk ``j`` has ℓ copies once the ℓ-th earliest of its
    holders' reports has arrived; the snapshot is when the last chunk has them (or the
    deadline, if earlier), and the state vector counts each worker's reports arrived by
    then. Without a deadline and with chunks never covered (crashed workers), the iteration
    never ends: the snapshot stays infinite. Workers stop when the signal reaches them and
    those with a non-zero state send their coded vector; the PS decodes when the last
    arrives. The loops are compiled (:func:`.kernels.partial_events`).
    """
    slots = D.shape[1]
    per_link = net.per_worker
    times, bits, totals = net.kernel_arrays
    state, senders, snapshot, stop, decode_time, chunks, messages, busy = (
        coding_kernels.partial_events(
            np.ascontiguousarray(D, dtype=np.float64),
            np.ascontiguousarray(pos, dtype=np.int64),
            np.ascontiguousarray(_loads(D, loads)),
            times,
            bits,
            totals,
            per_link,
            float(report_every),
            math.inf if deadline is None else float(deadline),
            int(parts),
        )
    )
    return Schedule(
        decode_time,
        senders,
        busy=busy,
        state=state,
        snapshot_time=snapshot,
        stop_time=stop if per_link else snapshot + net.signal,
        slots=slots,
        chunk_array=chunks,
        message_array=messages,
    )


def coverage_times(C: np.ndarray, pos: np.ndarray, parts: int = 1) -> np.ndarray:
    """Time at which every chunk first has ``parts`` processed copies, for a batch of
    scenarios.

    ``C[k, i, s]`` is when worker ``i`` finishes its slot ``s`` in scenario ``k`` (cumulative
    durations); ``pos`` gives the slot of each held chunk. No network delays: this is the
    exact-recovery snapshot time of the protocol with instant messages.
    """
    workers, chunks = np.nonzero(pos < C.shape[2])
    K, n = C.shape[0], C.shape[1]
    m = pos.shape[1]
    times = np.full((K, n, m), np.inf)
    times[:, workers, chunks] = C[:, workers, pos[workers, chunks]]
    if parts == 1:
        return times.min(axis=1).max(axis=1)
    return np.partition(times, parts - 1, axis=1)[:, parts - 1].max(axis=1)
