"""The test oracle for gradient coding's event lists: the numpy partial-protocol schedule and
lazy-bookkeeping sums that the compiled kernels (gossipsim.algorithms.coding.kernels)
replace, kept verbatim so the tests can hold the kernels to them bit for bit."""

from __future__ import annotations

import math

import numpy as np

from gossipsim.algorithms.coding.schedule import (
    BROADCAST,
    CODED,
    KIND_CODES,
    REPORT,
    SIGNAL,
    MessageTimes,
    Schedule,
)


def _col(x: float | np.ndarray) -> float | np.ndarray:
    return x[:, None] if isinstance(x, np.ndarray) else x


def _of(x: float | np.ndarray, i: int) -> float:
    return float(x[i]) if isinstance(x, np.ndarray) else x


def _total(x: float | np.ndarray, n: int) -> float:
    return float(np.sum(x)) if isinstance(x, np.ndarray) else n * x


def _finish_times(D: np.ndarray, slots: int, start: float | np.ndarray) -> np.ndarray:
    return _col(start) + np.cumsum(D[:, :slots], axis=1)


def _loads(D: np.ndarray, loads: np.ndarray | None) -> np.ndarray:
    if loads is None:
        return np.full(D.shape[0], D.shape[1], dtype=np.int64)
    return np.asarray(loads, dtype=np.int64)


def partial_schedule(
    D: np.ndarray,
    pos: np.ndarray,
    net: MessageTimes,
    report_every: float = 0.0,
    deadline: float | None = None,
    parts: int = 1,
    loads: np.ndarray | None = None,
) -> Schedule:
    """Schedule of the partial-straggler protocol (``deadline`` set = approximate recovery)."""
    n, slots = D.shape
    loads = _loads(D, loads)
    finish = _finish_times(D, slots, net.model)
    # When the PS learns that slot k of worker i is done: its report's send time (the
    # chunk's finish, or the next reporting tick) plus the report's delivery time.
    mine = np.arange(slots)[None, :] < loads[:, None]
    done = mine & np.isfinite(finish)
    if report_every <= 0:
        sends = finish
    else:
        model = _col(net.model)
        ticks = np.ceil((finish - model) / report_every) * report_every + model
        sends = np.maximum(ticks, finish)  # round-off must not put a tick before the chunk
    sends = np.where(done, sends, np.inf)
    known = sends + _col(net.report)  # (n, slots), inf for slots never reported
    # Every chunk has ℓ copies once the ℓ-th earliest of its holders' reports has arrived.
    held_w, held_c = np.nonzero(pos < slots)
    at = np.full(pos.shape, np.inf)
    at[held_w, held_c] = known[held_w, pos[held_w, held_c]]
    if parts == 1:
        cover = at.min(axis=0)
    else:
        cover = np.partition(at, parts - 1, axis=0)[parts - 1]
    snapshot = float(cover.max()) if cover.size else 0.0
    if deadline is not None and snapshot > deadline:
        snapshot = float(deadline)
    state = ((known <= snapshot) & np.isfinite(known)).sum(axis=1).astype(np.int64)
    # Without a deadline and with chunks never covered (crashed workers), the iteration
    # never ends: the snapshot stays infinite.
    stop = snapshot + net.signal  # the signal reaches the workers (each over its link)
    senders = np.flatnonzero(state > 0)
    decode_time = snapshot
    if senders.size:
        arrivals = np.asarray(stop + net.coded)
        decode_time = float(arrivals[senders].max() if arrivals.ndim else arrivals)
    schedule = Schedule(
        decode_time, senders, state=state, snapshot_time=snapshot, stop_time=stop, slots=slots
    )
    # One report per finished chunk, or per tick in which the count changed.
    sent = np.isfinite(sends) & (sends <= _col(stop))
    if report_every <= 0:
        report_sends = sends[sent]
        reporters = np.nonzero(sent)[0]
    else:
        per_row = [np.unique(row[ok]) for row, ok in zip(sends, sent, strict=True)]
        report_sends = np.concatenate(per_row)
        reporters = np.repeat(np.arange(n), [row.size for row in per_row])
    rows: list[tuple]
    if net.per_worker:
        rows = [(0.0, KIND_CODES[BROADCAST], n, net.model_bits, _total(net.model, n))]
        if math.isfinite(snapshot):
            rows.append((snapshot, KIND_CODES[SIGNAL], n, net.signal_bits, _total(net.signal, n)))
            rows += [
                (_of(stop, i), KIND_CODES[CODED], 1, net.coded_bits, _of(net.coded, i))
                for i in senders.tolist()
            ]
        reports = np.empty((report_sends.size, 5))
        reports[:, 0] = report_sends
        reports[:, 1:4] = (KIND_CODES[REPORT], 1, net.report_bits)
        reports[:, 4] = np.asarray(net.report)[reporters]
        schedule.set_messages(np.vstack([np.array(rows, dtype=np.float64), reports]), 5)
    else:
        rows = [(0.0, KIND_CODES[BROADCAST], n, net.model_bits)]
        if math.isfinite(snapshot):
            rows.append((snapshot, KIND_CODES[SIGNAL], n, net.signal_bits))
            if senders.size:
                rows.append((stop, KIND_CODES[CODED], int(senders.size), net.coded_bits))
        reports = np.empty((report_sends.size, 4))
        reports[:, 0] = report_sends
        reports[:, 1:] = (KIND_CODES[REPORT], 1, net.report_bits)
        schedule.set_messages(np.vstack([np.array(rows, dtype=np.float64), reports]))
    stop_at = stop[:, None] if isinstance(stop, np.ndarray) else stop
    workers, ks = np.nonzero(mine & (finish <= stop_at))
    chunks = np.empty((workers.size, 4))
    chunks[:, 0] = finish[workers, ks]
    chunks[:, 1] = workers
    chunks[:, 2] = ks
    chunks[:, 3] = ks >= state[workers]
    schedule.set_chunks(chunks)
    last = finish[np.arange(n), loads - 1]
    if net.per_worker:
        schedule.busy = np.where(stop > net.model, np.minimum(last, stop) - net.model, 0.0)
    else:
        schedule.busy = np.minimum(last, stop) - net.model if stop > net.model else np.zeros(n)
    return schedule


def queue_events(
    t0: float,
    schedule: Schedule,
    sizes: np.ndarray,
    slot_chunk: np.ndarray,
    batch: str | int,
    message_times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``GradientCoding.queue_events``' entry ``(times, sums)`` of an iteration's events."""
    # Columns: chunks, wasted, samples, messages, bits, comm time, reports, coded.
    chunk = schedule.chunk_array
    workers, slots = chunk[:, 1].astype(np.int64), chunk[:, 2].astype(np.int64)
    sizes = sizes[slot_chunk[workers, slots]]
    if batch != "full":
        sizes = np.minimum(sizes, float(batch))
    table_c = np.zeros((chunk.shape[0], 8))
    table_c[:, 0] = 1.0
    table_c[:, 1] = chunk[:, 3]
    table_c[:, 2] = sizes
    message = schedule.message_array
    codes = message[:, 1].astype(np.int64)
    counts = message[:, 2]
    table_m = np.zeros((message.shape[0], 8))
    table_m[:, 3] = counts
    table_m[:, 4] = counts * message[:, 3]
    if message.shape[1] > 4:  # per-link times: each row's own seconds
        table_m[:, 5] = message[:, 4]
    else:
        table_m[:, 5] = counts * message_times[codes]
    table_m[:, 6] = counts * (codes == KIND_CODES[REPORT])
    table_m[:, 7] = counts * (codes == KIND_CODES[CODED])
    times = np.concatenate([chunk[:, 0], message[:, 0]])
    tags = np.concatenate([np.zeros(chunk.shape[0]), np.ones(message.shape[0])])
    order = np.lexsort((tags, times))  # by time, chunk completions first (stable)
    times = t0 + times[order]
    sums = np.vstack([np.zeros((1, 8)), np.cumsum(np.vstack([table_c, table_m])[order], 0)])
    return times, sums
