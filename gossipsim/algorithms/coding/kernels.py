"""Compiled kernels of gradient coding: the PS's chunk gradients, an iteration's events.

**Chunk gradients** (linear objectives). Every iteration the PS needs the gradient of every
chunk at one model ``w``. For least squares and logistic regression (a network with no
hidden layer, one output, a squared or logistic head) each sample row contributes
``dout·[x, 1]`` with ``dout`` a function of its own logit, so one pass over the rows (in
chunk order, stored contiguously) gives all the chunk gradients: the data is read once
instead of twice (forward, then backward) by the batched numpy path. The math is
:mod:`gossipsim.objectives`' (``dout = (σ(z) − y)/N_j`` or ``(z − y)/N_j``; no L2 term
here); sums may be reassociated (SIMD), so results agree with ``Objective.grad_many`` to
rounding, not bit for bit.

**Events** (every scheme's timing, no model values). :func:`partial_events` is the body of
:func:`.schedule.partial_schedule` (the protocol's snapshot, state vector, messages and
chunk completions); :func:`event_totals` and :func:`event_sums` are the lazy bookkeeping's
(``GradientCoding.queue_events`` and ``stamp``): what all of an iteration's events add to
the counters, and, for a row recorded while the iteration is under way, the cumulative sums
over its events in time order. A few hundred events per iteration cost more in numpy
calls than in arithmetic, so they are loops here; they do the same floating-point
operations in the same order as the numpy formulation they replace (no fastmath; only
:func:`event_totals` adds the counts, integers, in another order, which is exact), so their
results are equal bit for bit (the tests hold them to it: tests/oracle).
"""

from __future__ import annotations

import math

import numpy as np

from gossipsim.engine.jit import jit
from gossipsim.objectives.base import Objective
from gossipsim.objectives.heads import LogisticHead, SquaredHead

SQUARED, LOGISTIC = 0, 1
#: Message kinds as codes in the event arrays (:data:`.schedule.KIND_CODES`): the kinds'
#: names in alphabetical order.
BROADCAST_CODE, CODED_CODE, REPORT_CODE, SIGNAL_CODE = 0, 1, 2, 3


def kernel_head(objective: Objective) -> int | None:
    """The kernel's head code for ``objective``, or None when it does not apply."""
    net = getattr(objective, "net", None)
    head = getattr(objective, "head", None)
    if net is None or head is None or list(net.sizes[1:]) != [1]:
        return None
    return {SquaredHead: SQUARED, LogisticHead: LOGISTIC}.get(type(head))


@jit(nogil=True, fastmath={"reassoc", "contract"})
def chunk_gradients(
    w: np.ndarray,
    features: np.ndarray,
    targets: np.ndarray,
    starts: np.ndarray,
    head: int,
    out: np.ndarray,
) -> None:
    """``out[j]``: gradient of chunk ``j``'s mean loss at ``w``, rows ``starts[j]:starts[j+1]``."""
    f = features.shape[1]
    for j in range(starts.shape[0] - 1):
        first, last = starts[j], starts[j + 1]
        scale = 1.0 / (last - first)
        G = out[j]
        G[:] = 0.0
        for r in range(first, last):
            x = features[r]
            z = w[f]
            for c in range(f):
                z += x[c] * w[c]
            if head == LOGISTIC:
                d = (1.0 / (1.0 + math.exp(-z)) - targets[r]) * scale
            else:
                d = (z - targets[r]) * scale
            for c in range(f):
                G[c] += d * x[c]
            G[f] += d


# -- events --------------------------------------------------------------------------------


@jit(nogil=True)
def _maximum(a: float, b: float) -> float:
    """``numpy.maximum`` of two numbers (NaN if either is)."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


@jit(nogil=True)
def _minimum(a: float, b: float) -> float:
    """``numpy.minimum`` of two numbers (NaN if either is)."""
    if a != a or b != b:
        return a + b
    return a if a < b else b


@jit(nogil=True)
def partial_events(
    D: np.ndarray,
    pos: np.ndarray,
    loads: np.ndarray,
    times: np.ndarray,
    bits: np.ndarray,
    totals: np.ndarray,
    per_link: bool,
    report_every: float,
    deadline: float,
    parts: int,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """One iteration of the partial-straggler protocol from its slot durations ``D``.

    ``times`` ``(4, 1)`` (every link alike) or ``(4, n)`` (``per_link``): the model,
    report, signal and coded-vector delivery times; ``bits`` the four messages' sizes in
    that order; ``totals`` the seconds of the model broadcast and of the signal to every
    worker (per-link message rows carry them); ``deadline`` ``inf`` for exact recovery.
    Returns ``(state, senders, snapshot, stop, decode_time, chunks, messages, busy)``:
    ``stop`` per worker, ``chunks`` rows ``(t, worker, slot, wasted)`` and ``messages`` rows
    ``(t, kind code, count, bits[, seconds])`` in :func:`.schedule.partial_schedule`'s order.
    """
    n, slots = D.shape
    m = pos.shape[1]
    if pos.shape[0] != n or loads.shape[0] != n or times.shape[1] != (n if per_link else 1):
        raise ValueError("partial_events: D, pos, loads and the link times disagree on n")
    if parts < 1 or (m > 0 and parts > n):
        raise ValueError("partial_events: parts must be between 1 and the workers")
    for i in range(n):
        if loads[i] < 0 or loads[i] > slots:
            raise ValueError("partial_events: a worker's load exceeds the slots of D")
    finish = np.empty((n, slots))
    sends = np.empty((n, slots))
    known = np.empty((n, slots))
    for i in range(n):
        link = i if per_link else 0
        model = times[0, link]
        report = times[1, link]
        elapsed = 0.0
        for k in range(slots):
            elapsed = D[i, k] if k == 0 else elapsed + D[i, k]
            f = model + elapsed
            finish[i, k] = f
            send = np.inf
            if k < loads[i] and np.isfinite(f):
                send = f
                if report_every > 0:
                    tick = np.ceil((f - model) / report_every) * report_every + model
                    send = _maximum(tick, f)  # round-off must not put a tick before the chunk
            sends[i, k] = send
            known[i, k] = send + report
    # Chunk j has ℓ copies once the ℓ-th earliest report of its holders has arrived.
    earliest = np.full((m, parts), np.inf)
    for i in range(n):
        for j in range(m):
            slot = pos[i, j]
            if slot < slots:
                value = known[i, slot]
                if value < earliest[j, parts - 1]:
                    q = parts - 1
                    while q > 0 and earliest[j, q - 1] > value:
                        earliest[j, q] = earliest[j, q - 1]
                        q -= 1
                    earliest[j, q] = value
    snapshot = 0.0
    for j in range(m):
        cover = earliest[j, parts - 1]
        if j == 0 or cover > snapshot or cover != cover:
            snapshot = cover
    if snapshot > deadline:
        snapshot = deadline
    state = np.zeros(n, dtype=np.int64)
    stop = np.empty(n)
    count = 0
    for i in range(n):
        for k in range(slots):
            if known[i, k] <= snapshot and np.isfinite(known[i, k]):
                state[i] += 1
        stop[i] = snapshot + times[2, i if per_link else 0]
        if state[i] > 0:
            count += 1
    senders = np.empty(count, dtype=np.int64)
    decode_time = snapshot
    q = 0
    for i in range(n):
        if state[i] > 0:
            senders[q] = i
            arrival = stop[i] + times[3, i if per_link else 0]
            if q == 0 or arrival > decode_time:
                decode_time = arrival
            q += 1
    # Reports: one per finished chunk, or per tick in which the count changed.
    sent = np.zeros((n, slots), dtype=np.bool_)
    reports = 0
    for i in range(n):
        for k in range(slots):
            if np.isfinite(sends[i, k]) and sends[i, k] <= stop[i]:
                sent[i, k] = True
                reports += 1
    ticks = np.empty(max(reports, 1))
    reporters = np.empty(max(reports, 1), dtype=np.int64)
    reports = 0
    for i in range(n):
        first = reports
        for k in range(slots):
            if sent[i, k]:
                value = sends[i, k]
                if report_every > 0:  # sorted, once per distinct tick
                    q = reports
                    while q > first and ticks[q - 1] > value:
                        q -= 1
                    if q > first and ticks[q - 1] == value:
                        continue
                    for r in range(reports, q, -1):
                        ticks[r] = ticks[r - 1]
                    ticks[q] = value
                else:
                    ticks[reports] = value
                reporters[reports] = i
                reports += 1
    finite = np.isfinite(snapshot)
    coded_rows = 0
    if finite:
        coded_rows = count if per_link else min(count, 1)
    columns = 5 if per_link else 4
    rows = 1 + (1 if finite else 0) + coded_rows
    messages = np.empty((rows + reports, columns))
    messages[0, 0] = 0.0
    messages[0, 1] = BROADCAST_CODE
    messages[0, 2] = n
    messages[0, 3] = bits[0]
    if per_link:
        messages[0, 4] = totals[0]
    if finite:
        messages[1, 0] = snapshot
        messages[1, 1] = SIGNAL_CODE
        messages[1, 2] = n
        messages[1, 3] = bits[2]
        if per_link:
            messages[1, 4] = totals[1]
            for q in range(count):
                i = senders[q]
                messages[2 + q, 0] = stop[i]
                messages[2 + q, 1] = CODED_CODE
                messages[2 + q, 2] = 1.0
                messages[2 + q, 3] = bits[3]
                messages[2 + q, 4] = times[3, i]
        elif count > 0:
            messages[2, 0] = stop[0]
            messages[2, 1] = CODED_CODE
            messages[2, 2] = count
            messages[2, 3] = bits[3]
    for r in range(reports):
        messages[rows + r, 0] = ticks[r]
        messages[rows + r, 1] = REPORT_CODE
        messages[rows + r, 2] = 1.0
        messages[rows + r, 3] = bits[1]
        if per_link:
            messages[rows + r, 4] = times[1, reporters[r]]
    # Chunk completions before the workers stop; wasted if after the snapshot's count.
    finished = 0
    for i in range(n):
        for k in range(min(slots, loads[i])):
            if finish[i, k] <= stop[i]:
                finished += 1
    chunks = np.empty((finished, 4))
    busy = np.empty(n)
    q = 0
    for i in range(n):
        for k in range(min(slots, loads[i])):
            if finish[i, k] <= stop[i]:
                chunks[q, 0] = finish[i, k]
                chunks[q, 1] = i
                chunks[q, 2] = k
                chunks[q, 3] = 1.0 if k >= state[i] else 0.0
                q += 1
        model = times[0, i if per_link else 0]
        last = loads[i] - 1 if loads[i] > 0 else loads[i] - 1 + slots
        if stop[i] > model:
            busy[i] = _minimum(finish[i, last], stop[i]) - model
        else:
            busy[i] = 0.0
    return state, senders, snapshot, stop, decode_time, chunks, messages, busy


@jit(nogil=True)
def event_sums(
    t0: float,
    chunks: np.ndarray,
    messages: np.ndarray,
    samples: np.ndarray,
    message_times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """An iteration's events in time order (chunk completions before messages at the same
    time, else in row order) and the cumulative sums of what they add to the counters.

    ``chunks`` rows ``(t, worker, slot, wasted)``, ``messages`` rows ``(t, kind code,
    count, bits[, seconds])``, times relative to ``t0``; ``samples[worker, slot]`` the
    samples a chunk gradient reads; ``message_times[code]`` the seconds of one message of a
    kind (for rows without their own). Returns ``(times, sums)``: ``sums`` has a row of
    zeros, then one per event, columns chunks, wasted, samples, messages, bits, comm time,
    reports, coded vectors.
    """
    k = chunks.shape[0]
    total = k + messages.shape[0]
    per_link = messages.shape[1] > 4
    when = np.empty(total)
    for a in range(k):
        when[a] = chunks[a, 0]
    for b in range(messages.shape[0]):
        when[k + b] = messages[b, 0]
    # Stable: chunk completions (the first rows) before messages at the same time.
    order = np.argsort(when, kind="mergesort")
    times = np.empty(total)
    sums = np.zeros((total + 1, 8))
    for q in range(total):
        a = order[q]
        times[q] = t0 + when[a]
        for c in range(8):
            sums[q + 1, c] = sums[q, c]
        if a < k:
            sums[q + 1, 0] = sums[q, 0] + 1.0
            sums[q + 1, 1] = sums[q, 1] + chunks[a, 3]
            sums[q + 1, 2] = sums[q, 2] + samples[int(chunks[a, 1]), int(chunks[a, 2])]
        else:
            b = a - k
            code = int(messages[b, 1])
            count = messages[b, 2]
            sums[q + 1, 3] = sums[q, 3] + count
            sums[q + 1, 4] = sums[q, 4] + count * messages[b, 3]
            if per_link:
                sums[q + 1, 5] = sums[q, 5] + messages[b, 4]
            else:
                sums[q + 1, 5] = sums[q, 5] + count * message_times[code]
            if code == REPORT_CODE:
                sums[q + 1, 6] = sums[q, 6] + count
            elif code == CODED_CODE:
                sums[q + 1, 7] = sums[q, 7] + count
    return times, sums


@jit(nogil=True)
def event_totals(
    t0: float,
    chunks: np.ndarray,
    messages: np.ndarray,
    samples: np.ndarray,
    message_times: np.ndarray,
) -> tuple[float, np.ndarray]:
    """The time of an iteration's last event and the last row of :func:`event_sums`' sums
    (what all its events add to the counters), without ordering the chunk completions.

    The sums of the counts are sums of integers, exact in any order; the communication
    time is summed over the messages in :func:`event_sums`' order (chunk completions add
    nothing to it), so the totals are that row bit for bit. The last time is NaN if any
    event's time is.
    """
    totals = np.zeros(8)
    last = -np.inf
    k = chunks.shape[0]
    for a in range(k):
        last = _maximum(last, t0 + chunks[a, 0])
        totals[0] += 1.0
        totals[1] += chunks[a, 3]
        totals[2] += samples[int(chunks[a, 1]), int(chunks[a, 2])]
    per_link = messages.shape[1] > 4
    when = np.empty(messages.shape[0])
    for b in range(messages.shape[0]):
        when[b] = messages[b, 0]
        last = _maximum(last, t0 + messages[b, 0])
        code = int(messages[b, 1])
        count = messages[b, 2]
        totals[3] += count
        totals[4] += count * messages[b, 3]
        if code == REPORT_CODE:
            totals[6] += count
        elif code == CODED_CODE:
            totals[7] += count
    for b in np.argsort(when, kind="mergesort"):
        if per_link:
            totals[5] += messages[b, 4]
        else:
            totals[5] += messages[b, 2] * message_times[int(messages[b, 1])]
    return last, totals
