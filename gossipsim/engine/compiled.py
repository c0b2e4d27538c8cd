"""The compiled interpreter of node programs: the fast exact path of every asynchronous algorithm.

One numba loop runs every node's resolved program (:mod:`gossipsim.engine.program`) with
SimPy's event order, so it produces the same operations at the same times in the same
order as the SimPy interpreter (:mod:`gossipsim.engine.interpreter`):

* three queues, as in :class:`~gossipsim.engine.lean.LeanEnvironment`: urgent process
  starts, the ``(time, insertion)`` heap, and the same-instant FIFO;
* node locks replaying ``simpy.Resource(capacity=1)``: a per-lock FIFO of waiting nodes
  (linked lists); a release is an event of its own that grants the next waiter;
* message deliveries (push-sum) as processes of their own: an urgent start, then a
  timeout, as ``env.process`` does;
* the operation log of the batched executor, each operation with its wave level.

A queue entry is ``(kind, node)``: ``kind >= 0`` resumes ``node`` at instruction ``kind``;
negative kinds are the engine's own events (a Python event, the stop event, a lock
release, a delivery). A node runs instructions until one that waits.

The loop returns to Python whenever Python has to act, and is called again with the same
state: a Python event falls due (the recorder, the timer; its callback runs with
``env.now`` and the simulation's counters in sync); the stop event is processed; a node's
block of pre-drawn random values is used up, or its compute time must come from Python
(transient stragglers) — the node is then suspended at that instruction and resumes first
on the next call, so nothing else happens in between; the log is full; a queue needs more
room; or an event budget is spent (so that Ctrl-C is seen within a fraction of a second).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gossipsim.engine import program as P
from gossipsim.engine.batched import (
    BUFFER,
    PAIR,
    PUSH_RECEIVE,
    PUSH_SEND,
    BatchedExecutor,
    logged_operation,
)
from gossipsim.engine.jit import jit
from gossipsim.engine.lean import LeanEnvironment, LeanEvent
from gossipsim.engine.program import (
    ACQUIRE,
    ADD_COMM,
    ADD_COMM_X,
    ADD_IDLE_SINCE_MARK,
    AWAIT_MESSAGES,
    COMPUTE,
    COUNT_INTERACTION,
    COUNT_STEPS,
    DRAW_DURATION,
    DRAW_STEPS,
    IF_DOWN,
    IF_UP,
    JUMP,
    LOG,
    LOWER,
    MARK,
    NEXT_ATTEMPT,
    NEXT_ITERATION,
    PICK_EXPONENTIAL_PEER,
    PICK_NEIGHBOUR,
    PICK_NEXT_NEIGHBOUR,
    RELEASE,
    SELF,
    SEND,
    SEND_X,
    SET_ATTEMPT,
    SET_STEPS,
    WAIT,
    WAIT_REST,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import FixedLocalSteps, GeometricLocalSteps

# Engine events (negative kinds; a kind >= 0 is the instruction a node resumes at).
EXTERNAL, STOP, RELEASE_EVENT, DELIVER_START, DELIVER = -1, -2, -3, -4, -5
# Why the kernel returned.
R_STOP, R_EXTERNAL, R_NEED, R_LOGFULL, R_GROW, R_BUDGET, R_EMPTY, R_CALL = range(8)
# Slots of the integer state vector.
(
    HEAP_SIZE,
    SEQ,
    SOON_HEAD,
    SOON_LEN,
    URGENT_HEAD,
    URGENT_LEN,
    INTERACTIONS,
    LOCAL_STEPS,
    SAMPLES,
    LOG_LEN,
    LOG_CAP,
    STOP_TRIGGERED,
    STOP_REASON,
    NEED_NODE,
    NEED_STREAM,
    NEED_COUNT,
    N_TRAIN,
    INTERACTIONS_LIMIT,
    FIXED_STEPS,
    ARG,
    EVENTS,
    PENDING_NODE,
    PENDING_PC,
    NEXT_MESSAGE,
    FREE_LEN,
    PYTHON_DURATIONS,
    EXPONENT_CYCLE,
    N_NODES,
    CALL_NODE,
    CALL_PC,
    AWAITS,
    AWAIT_TIMEOUTS,
    AHEAD_FULL,
    LINK_BASE,
    N_INTS,
) = range(35)
# Slots of the float state vector.
NOW, IDLE, COMM, EPOCHS_LIMIT, N_FLOATS = range(5)
# Random values served in blocks, and durations computed by Python.
TIMING, PAIRING, STEPS, DURATION = range(4)
# Stop rules the kernel itself applies (the others are Python's: time, target loss, ...).
BY_INTERACTIONS, BY_EPOCHS = 1, 2
STOP_REASONS = {BY_INTERACTIONS: "interactions", BY_EPOCHS: "epochs"}
BUDGET = 1 << 20  # events per kernel call (the kernel does not see signals)
SOON_ROOM = 8  # room an engine event or one instruction may need in the FIFO
HEAP_ROOM = 2  # ... in the heap
URGENT_ROOM = 2  # ... in the urgent queue
LOG_ROOM = 8  # log entries beyond the capacity: operations of one instant go in together
SPARE = 64  # queue entries beyond the nodes' own when a run starts (queues grow as needed)
AHEAD = 8  # steps beyond a node's wait threshold whose early arrivals it counts (grows)


# -- queues ------------------------------------------------------------------------------------
# The kernel keeps the queue sizes, the clock and the counters in local variables and writes
# them to the state vectors when it returns; these primitives take them as arguments.


@jit()
def _heap_insert(ht, hs, hk, hn, size, t, seq, kind, node):
    """Insert at the end of a heap of ``size`` entries and sift up (by time, then seq)."""
    k = size
    while k > 0:
        parent = (k - 1) >> 1
        if t < ht[parent] or (t == ht[parent] and seq < hs[parent]):
            ht[k] = ht[parent]
            hs[k] = hs[parent]
            hk[k] = hk[parent]
            hn[k] = hn[parent]
            k = parent
        else:
            break
    ht[k] = t
    hs[k] = seq
    hk[k] = kind
    hn[k] = node


@jit()
def _heap_remove_top(ht, hs, hk, hn, size):
    """Remove the root of a heap of ``size`` entries (``size - 1`` remain)."""
    size -= 1
    if size == 0:
        return
    t = ht[size]
    s = hs[size]
    kind = hk[size]
    node = hn[size]
    k = 0
    while True:
        c = 2 * k + 1
        if c >= size:
            break
        d = c + 1
        if d < size and (ht[d] < ht[c] or (ht[d] == ht[c] and hs[d] < hs[c])):
            c = d
        if ht[c] < t or (ht[c] == t and hs[c] < s):
            ht[k] = ht[c]
            hs[k] = hs[c]
            hk[k] = hk[c]
            hn[k] = hn[c]
            k = c
        else:
            break
    ht[k] = t
    hs[k] = s
    hk[k] = kind
    hn[k] = node


@jit()
def _put(rk, rn, head, length, kind, node):
    """Append to a ring buffer holding ``length`` entries from ``head`` (caller counts it)."""
    at = head + length
    if at >= rk.shape[0]:
        at -= rk.shape[0]
    rk[at] = kind
    rn[at] = node


@jit()
def _ring_push(I, head_slot, len_slot, rk, rn, kind, node):
    """Append to a ring buffer whose head and length are kept in the state vector."""
    _put(rk, rn, I[head_slot], I[len_slot], kind, node)
    I[len_slot] += 1


@jit()
def _schedule_at(at, now, kind, node, sk, sn, shead, slen, ht, hs, hk, hn, size, seq):
    """``LeanEnvironment.schedule``: at the current instant → the FIFO, later → the heap.

    Returns the new (FIFO length, heap size, insertion counter).
    """
    if at == now:
        _put(sk, sn, shead, slen, kind, node)
        return slen + 1, size, seq
    _heap_insert(ht, hs, hk, hn, size, at, seq, kind, node)
    return slen, size + 1, seq + 1


@jit()
def _schedule(I, F, ht, hs, hk, hn, sk, sn, delay, kind, node):
    """:func:`_schedule_at` from Python, on the counters kept in the state vector."""
    now = F[NOW]
    I[SOON_LEN], I[HEAP_SIZE], I[SEQ] = _schedule_at(
        now + delay, now, kind, node, sk, sn, I[SOON_HEAD], I[SOON_LEN],
        ht, hs, hk, hn, I[HEAP_SIZE], I[SEQ],
    )  # fmt: skip


# -- durations ---------------------------------------------------------------------------------


@jit()
def _block_sum(a, lo, n):
    """numpy's pairwise summation of a block of at most 128 values."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@jit()
def _pairwise(a, lo, n):
    """numpy's pairwise summation of ``a[lo:lo + n]`` (``np.sum`` of a contiguous array).

    Blocks of up to 128 values are summed with eight accumulators; longer runs split in
    two halves (a multiple of 8 on the left) whose sums are added. The recursion is
    unrolled with explicit stacks: numba's cache cannot hold recursive functions.
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    frame_lo = np.empty(128, dtype=np.int64)
    frame_n = np.empty(128, dtype=np.int64)
    frame_done = np.zeros(128, dtype=np.int64)
    values = np.empty(128, dtype=np.float64)
    frames = 1
    count = 0
    frame_lo[0] = lo
    frame_n[0] = n
    while frames > 0:
        frames -= 1
        flo = frame_lo[frames]
        fn = frame_n[frames]
        if fn <= 128:
            values[count] = _block_sum(a, flo, fn)
            count += 1
        elif frame_done[frames]:
            # Both halves summed: left below right on the value stack.
            count -= 1
            values[count - 1] = values[count - 1] + values[count]
        else:
            half = fn // 2
            half -= half % 8
            frame_done[frames] = 1  # the frame stays; its halves go on top of it
            frame_lo[frames + 1] = flo + half  # right half: summed second
            frame_n[frames + 1] = fn - half
            frame_done[frames + 1] = 0
            frame_lo[frames + 2] = flo  # left half: summed first
            frame_n[frames + 2] = half
            frame_done[frames + 2] = 0
            frames += 3
    return values[0]


def pairwise_sum(values: np.ndarray) -> float:
    """:func:`_pairwise` over a whole 1-D array (for tests against ``np.sum``)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return float(_pairwise(values, 0, values.shape[0]))


@jit()
def _compute_time(i, s, factor, tbuf, tcur, scratch, preset):
    """Duration of ``s`` local steps of node ``i`` (``NodeClock``: draws times factor, summed).

    More steps than a block holds were summed by Python (``preset[i]``, used once).
    """
    if preset[i] >= 0.0:
        duration = preset[i]
        preset[i] = -1.0
        return duration
    if s == 0:
        return 0.0
    c = tcur[i]
    f = factor[i]
    if s == 1:
        tcur[i] = c + 1
        return tbuf[i, c] * f
    for k in range(s):
        scratch[k] = tbuf[i, c + k] * f
    tcur[i] = c + s
    return _pairwise(scratch, 0, s)


# -- the loop ----------------------------------------------------------------------------------


@jit()
def _grant(lock, held, qhead, qnext, resume, sk, sn, shead, slen):
    """A free lock grants the head of its queue, if any: that node resumes at this instant.

    Returns the new FIFO length.
    """
    if qhead[lock] < 0 or held[lock] != 0:
        return slen
    held[lock] = 1
    head = qhead[lock]
    qhead[lock] = qnext[head]
    _put(sk, sn, shead, slen, resume[head], head)
    return slen + 1


@jit()
def _request(lock, i, then, held, qhead, qtail, qnext, resume, sk, sn, shead, slen):
    """``simpy.Resource.request``: queue up (to resume at ``then``), granted if free.

    Returns the new FIFO length.
    """
    resume[i] = then
    qnext[i] = -1
    if qhead[lock] < 0:
        qhead[lock] = i
    else:
        qnext[qtail[lock]] = i
    qtail[lock] = i
    return _grant(lock, held, qhead, qnext, resume, sk, sn, shead, slen)


@jit()
def _request_stop(stop_triggered, stop_reason, reason, sk, sn, shead, slen):
    """The stop event's ``succeed()``: queued at this instant, once.

    Returns the new (triggered flag, reason, FIFO length).
    """
    if stop_triggered != 0:
        return stop_triggered, stop_reason, slen
    _put(sk, sn, shead, slen, STOP, 0)
    return 1, reason, slen + 1


@jit()
def _log(lcode, la, lb, lc, llevel, m, code, a, b, c, level):
    lcode[m] = code
    la[m] = a
    lb[m] = b
    lc[m] = c
    llevel[m] = level


# -- the loop ----------------------------------------------------------------------------------


@jit()
def run_kernel(
    I, F, ht, hs, hk, hn, sk, sn, uk, un,
    held, qhead, qtail, qnext, resume,
    H, J, K, A, L, T, D, X,
    op, arg, target, consts, ltab, node_up, degree,
    factor, batch,
    tbuf, tcur, tend, pbuf, pcur, pend, gbuf, gcur, gend, scratch, preset,
    lcode, la, lb, lc, llevel, last,
    mdest, mdelay, mlevel, mid, mfree, mstep,
    nptr, nidx, sptr, soff, sper,
    threshold, got, need, given_up, waiting, wresume, ahead,
):  # fmt: skip
    """Process events until Python has to act; returns the reason (``R_*``)."""
    fixed = I[FIXED_STEPS]
    python_durations = I[PYTHON_DURATIONS] != 0
    epochs_limit = F[EPOCHS_LIMIT]
    interactions_limit = I[INTERACTIONS_LIMIT]
    n_train = I[N_TRAIN]
    n_nodes = I[N_NODES]
    cycle = I[EXPONENT_CYCLE]
    link_base = I[LINK_BASE]
    awaits = I[AWAITS] != 0
    await_timeouts = I[AWAIT_TIMEOUTS] != 0
    width = ahead.shape[1]
    log_cap = I[LOG_CAP]
    log_size = lcode.shape[0]
    soon_cap = sk.shape[0]
    urgent_cap = uk.shape[0]
    heap_cap = ht.shape[0]
    # Hot state in locals, written back below.
    now = F[NOW]
    idle = F[IDLE]
    comm = F[COMM]
    size = I[HEAP_SIZE]
    seq = I[SEQ]
    shead = I[SOON_HEAD]
    slen = I[SOON_LEN]
    uhead = I[URGENT_HEAD]
    ulen = I[URGENT_LEN]
    m = I[LOG_LEN]
    interactions = I[INTERACTIONS]
    local_steps = I[LOCAL_STEPS]
    samples = I[SAMPLES]
    stop_triggered = I[STOP_TRIGGERED]
    stop_reason = I[STOP_REASON]
    events = I[EVENTS]
    free_len = I[FREE_LEN]
    next_message = I[NEXT_MESSAGE]
    budget = BUDGET
    reason = -1
    while True:
        if I[PENDING_NODE] >= 0:
            # A node suspended inside its instructions goes on first.
            i = I[PENDING_NODE]
            pc = I[PENDING_PC]
            I[PENDING_NODE] = -1
        else:
            if budget == 0:
                reason = R_BUDGET
                break
            budget -= 1
            if m >= log_cap:
                reason = R_LOGFULL
                break
            if (
                slen + SOON_ROOM > soon_cap
                or size + HEAP_ROOM > heap_cap
                or ulen + URGENT_ROOM > urgent_cap
            ):
                reason = R_GROW
                break
            # The next event, as LeanEnvironment.run picks it.
            if ulen > 0:
                kind = uk[uhead]
                i = un[uhead]
                uhead += 1
                if uhead == urgent_cap:
                    uhead = 0
                ulen -= 1
            elif slen > 0 and not (size > 0 and ht[0] == now):
                kind = sk[shead]
                i = sn[shead]
                shead += 1
                if shead == soon_cap:
                    shead = 0
                slen -= 1
            elif size > 0:
                kind = hk[0]
                i = hn[0]
                now = ht[0]
                _heap_remove_top(ht, hs, hk, hn, size)
                size -= 1
            else:
                reason = R_EMPTY
                break
            events += 1
            if kind < 0:
                if kind == EXTERNAL:
                    I[ARG] = i
                    reason = R_EXTERNAL
                    break
                if kind == STOP:
                    reason = R_STOP
                    break
                if kind == RELEASE_EVENT:
                    # The release event of lock i grants the head of its queue, if any.
                    slen = _grant(i, held, qhead, qnext, resume, sk, sn, shead, slen)
                elif kind == DELIVER_START:
                    # The delivery process starts: its message arrives after its delay.
                    slen, size, seq = _schedule_at(
                        now + mdelay[i], now, DELIVER, i, sk, sn, shead, slen,
                        ht, hs, hk, hn, size, seq,
                    )  # fmt: skip
                else:  # DELIVER: message slot i arrives and is added in
                    dest = mdest[i]
                    ld = last[dest]
                    level = (ld if ld > mlevel[i] else mlevel[i]) + 1
                    last[dest] = level
                    _log(lcode, la, lb, lc, llevel, m, PUSH_RECEIVE, dest, mid[i], 0, level)
                    m += 1
                    mfree[free_len] = i
                    free_len += 1
                    interactions += 1
                    if interactions_limit >= 0 and interactions >= interactions_limit:
                        stop_triggered, stop_reason, slen = _request_stop(
                            stop_triggered, stop_reason, BY_INTERACTIONS, sk, sn, shead, slen
                        )
                    if awaits:
                        # Counted for the receiver's wait (Inbox.arrive of the interpreter).
                        step = mstep[i]
                        if step > given_up[dest]:
                            if step > threshold[dest]:
                                ahead[dest, step % width] += 1
                            else:
                                got[dest] += 1
                                if waiting[dest] != 0 and got[dest] >= need[dest]:
                                    waiting[dest] = 0
                                    _put(sk, sn, shead, slen, wresume[dest], dest)
                                    slen += 1
                continue
            pc = kind
        # Node i runs its program from pc until an instruction that waits.
        suspend = -1
        while True:
            code = op[pc]
            if code == JUMP:
                pc = target[pc]
                continue
            if code == DRAW_STEPS:
                if fixed > 0:
                    H[i] = fixed
                else:
                    if gcur[i] == gend[i]:
                        suspend = STEPS
                        I[NEED_COUNT] = 1
                        break
                    H[i] = gbuf[i, gcur[i]]
                    gcur[i] += 1
            elif code == SET_STEPS:
                H[i] = arg[pc]
            elif code == PICK_NEIGHBOUR:
                if pcur[i] == pend[i]:
                    suspend = PAIRING
                    I[NEED_COUNT] = 1
                    break
                link = nptr[i] + pbuf[i, pcur[i]]
                J[i] = nidx[link]
                L[i] = link
                pcur[i] += 1
            elif code == PICK_EXPONENTIAL_PEER:
                k = K[i] % cycle
                J[i] = (i + (1 << k)) % n_nodes
                L[i] = link_base + i * cycle + k
            elif code == PICK_NEXT_NEIGHBOUR:
                link = nptr[i] + K[i] % degree[i]
                J[i] = nidx[link]
                L[i] = link
            elif code == NEXT_ITERATION:
                K[i] += 1
            elif code == MARK:
                T[i] = now
            elif code == ADD_IDLE_SINCE_MARK:
                idle += now - T[i]
            elif code == ADD_COMM:
                a = arg[pc]
                comm += consts[a] if a >= 0 else ltab[-a - 1, L[i]]
            elif code == ADD_COMM_X:
                comm += arg[pc] * X[i]
            elif code == IF_UP or code == IF_DOWN:
                if node_up[i] == (code == IF_UP):
                    pc = target[pc]
                    continue
            elif code == SET_ATTEMPT:
                A[i] = 0
            elif code == NEXT_ATTEMPT:
                A[i] += 1
                if A[i] < degree[i]:
                    pc = target[pc]
                    continue
            elif code == LOG:
                if m >= log_size:
                    suspend = -2
                    reason = R_LOGFULL
                    break
                operation = arg[pc]
                if operation == PAIR or operation == BUFFER:
                    j = J[i]
                    li = last[i]
                    lj = last[j]
                    level = (li if li > lj else lj) + 1
                    last[i] = level
                    last[j] = level
                    _log(lcode, la, lb, lc, llevel, m, operation, i, j, 0, level)
                else:
                    level = last[i] + 1
                    last[i] = level
                    _log(lcode, la, lb, lc, llevel, m, operation, i, H[i], 0, level)
                m += 1
            elif code == COUNT_STEPS:
                s = H[i]
                local_steps += s
                samples += s * batch[i]
                if epochs_limit == epochs_limit and samples / n_train >= epochs_limit:
                    stop_triggered, stop_reason, slen = _request_stop(
                        stop_triggered, stop_reason, BY_EPOCHS, sk, sn, shead, slen
                    )
            elif code == COUNT_INTERACTION:
                interactions += 1
                if interactions_limit >= 0 and interactions >= interactions_limit:
                    stop_triggered, stop_reason, slen = _request_stop(
                        stop_triggered, stop_reason, BY_INTERACTIONS, sk, sn, shead, slen
                    )
            elif code == RELEASE:
                if slen + SOON_ROOM > soon_cap:
                    suspend = -2
                    reason = R_GROW
                    break
                which = arg[pc]
                lock = i if which == SELF else (
                    (i if i < J[i] else J[i]) if which == LOWER else (i if i > J[i] else J[i])
                )  # fmt: skip
                held[lock] = 0
                _put(sk, sn, shead, slen, RELEASE_EVENT, lock)
                slen += 1
            elif code == SEND or code == SEND_X:
                if free_len == 0 or ulen + URGENT_ROOM > urgent_cap:
                    suspend = -2
                    reason = R_GROW
                    break
                if m >= log_size:
                    suspend = -2
                    reason = R_LOGFULL
                    break
                j = J[i]
                if awaits and K[i] - threshold[j] > width:
                    # The receiver could not count this message early: more room first.
                    I[AHEAD_FULL] = 1
                    suspend = -2
                    reason = R_GROW
                    break
                free_len -= 1
                slot = mfree[free_len]
                level = last[i] + 1
                last[i] = level
                _log(lcode, la, lb, lc, llevel, m, PUSH_SEND, i, next_message, j, level)
                m += 1
                mdest[slot] = j
                if code == SEND:
                    a = arg[pc]
                    mdelay[slot] = consts[a] if a >= 0 else ltab[-a - 1, L[i]]
                else:
                    mdelay[slot] = X[i]
                mlevel[slot] = level
                mid[slot] = next_message
                mstep[slot] = K[i]
                next_message += 1
                _put(uk, un, uhead, ulen, DELIVER_START, slot)
                ulen += 1
            elif code == ACQUIRE:
                if slen + SOON_ROOM > soon_cap:
                    suspend = -2
                    reason = R_GROW
                    break
                which = arg[pc]
                lock = i if which == SELF else (
                    (i if i < J[i] else J[i]) if which == LOWER else (i if i > J[i] else J[i])
                )  # fmt: skip
                slen = _request(
                    lock, i, pc + 1, held, qhead, qtail, qnext, resume, sk, sn, shead, slen
                )
                break
            elif code == COMPUTE or code == DRAW_DURATION:
                s = H[i]
                if preset[i] < 0.0:
                    if python_durations:
                        suspend = DURATION
                        I[NEED_COUNT] = s
                        break
                    if tend[i] - tcur[i] < s:
                        suspend = TIMING
                        I[NEED_COUNT] = s
                        break
                if code == DRAW_DURATION:
                    D[i] = _compute_time(i, s, factor, tbuf, tcur, scratch, preset)
                else:
                    if slen + SOON_ROOM > soon_cap or size + HEAP_ROOM > heap_cap:
                        suspend = -2
                        reason = R_GROW
                        break
                    at = now + _compute_time(i, s, factor, tbuf, tcur, scratch, preset)
                    slen, size, seq = _schedule_at(
                        at, now, pc + 1, i, sk, sn, shead, slen, ht, hs, hk, hn, size, seq
                    )
                    break
            elif code == WAIT or code == WAIT_REST:
                if slen + SOON_ROOM > soon_cap or size + HEAP_ROOM > heap_cap:
                    suspend = -2
                    reason = R_GROW
                    break
                if code == WAIT:
                    a = arg[pc]
                    delay = consts[a] if a >= 0 else ltab[-a - 1, L[i]]
                else:
                    delay = D[i] - (now - T[i])
                    if delay < 0.0:
                        delay = 0.0
                slen, size, seq = _schedule_at(
                    now + delay, now, pc + 1, i, sk, sn, shead, slen, ht, hs, hk, hn, size, seq
                )
                break
            elif code == AWAIT_MESSAGES:
                # Inbox.ready of the interpreter: move the threshold, count what is in.
                step = K[i] - 1 - arg[pc]
                if step > threshold[i]:
                    for s in range(threshold[i] + 1, step + 1):
                        got[i] += ahead[i, s % width]
                        ahead[i, s % width] = 0
                    threshold[i] = step
                    owed = 0
                    for e in range(sptr[i], sptr[i + 1]):
                        if step >= soff[e]:
                            owed += (step - soff[e]) // sper[e] + 1
                    need[i] = owed
                if got[i] < need[i]:
                    # Wait for the deliveries; with faults, Python starts the timeout.
                    waiting[i] = 1
                    wresume[i] = pc + 1
                    if await_timeouts:
                        I[CALL_NODE] = i
                        I[CALL_PC] = pc
                        suspend = -3
                        reason = R_CALL
                    break
            else:
                # WAIT_UP, EXCHANGE, MESSAGE: the fault model (Python) decides.
                I[CALL_NODE] = i
                I[CALL_PC] = pc
                suspend = -3
                reason = R_CALL
                break
            pc += 1
        if suspend == -1:
            continue
        if suspend == -3:
            break  # Python sets the node's continuation (or leaves it waiting)
        I[PENDING_NODE] = i
        I[PENDING_PC] = pc
        if suspend >= 0:
            I[NEED_NODE] = i
            I[NEED_STREAM] = suspend
            reason = R_NEED
        break
    F[NOW] = now
    F[IDLE] = idle
    F[COMM] = comm
    I[HEAP_SIZE] = size
    I[SEQ] = seq
    I[SOON_HEAD] = shead
    I[SOON_LEN] = slen
    I[URGENT_HEAD] = uhead
    I[URGENT_LEN] = ulen
    I[LOG_LEN] = m
    I[INTERACTIONS] = interactions
    I[LOCAL_STEPS] = local_steps
    I[SAMPLES] = samples
    I[STOP_TRIGGERED] = stop_triggered
    I[STOP_REASON] = stop_reason
    I[EVENTS] = events
    I[FREE_LEN] = free_len
    I[NEXT_MESSAGE] = next_message
    return reason


# -- the Python side ---------------------------------------------------------------------------


class ProgramKernel:
    """Runs a resolved program for every node of a simulation (the environment's ``kernel``)."""

    def __init__(self, sim: Simulation, program: P.Program, resolved: P.Resolved) -> None:
        env = sim.env
        if not isinstance(env, LeanEnvironment):
            raise TypeError("the compiled loop runs on a LeanEnvironment")
        self.sim = sim
        self.env = env
        self.program = program
        self.resolved = resolved
        n = sim.n
        self.n = n
        streams = sim.streams
        compute = sim.compute
        local_steps = program.local_steps
        fixed = local_steps.value if isinstance(local_steps, FixedLocalSteps) else 0
        uses = set(resolved.op.tolist())
        draws_steps = P.DRAW_STEPS in uses and isinstance(local_steps, GeometricLocalSteps)
        if P.DRAW_STEPS in uses and not draws_steps and fixed == 0:
            raise ValueError("program draws local steps but has no local_steps config")
        problem = sim.problem
        executor = sim.executor
        self.batched = executor.accepts_logs

        I = np.zeros(N_INTS, dtype=np.int64)
        F = np.zeros(N_FLOATS, dtype=np.float64)
        I[N_TRAIN] = problem.n_train
        I[N_NODES] = n
        I[EXPONENT_CYCLE] = P.exponential_cycle(n)
        I[LINK_BASE] = resolved.exponential_base
        limit = sim.config.stop.interactions
        I[INTERACTIONS_LIMIT] = -1 if limit is None else limit
        I[FIXED_STEPS] = fixed
        I[PENDING_NODE] = -1
        I[PYTHON_DURATIONS] = int(bool(compute._transient))
        # The log: the batched executor's own capacity, else one instant at a time so that
        # each operation is submitted at its own time.
        capacity = executor.flush_every if self.batched else 1
        I[LOG_CAP] = capacity
        F[NOW] = env.now
        epochs = sim.config.stop.epochs
        F[EPOCHS_LIMIT] = math.nan if epochs is None else epochs
        self.I, self.F = I, F

        room = n + SPARE
        self.heap = [np.zeros(room, dtype=np.float64)] + [
            np.zeros(room, dtype=np.int64) for _ in range(3)
        ]
        self.soon = [np.zeros(room, dtype=np.int64) for _ in range(2)]
        self.urgent = [np.zeros(room, dtype=np.int64) for _ in range(2)]

        self.held = np.zeros(n, dtype=np.int64)
        self.qhead = np.full(n, -1, dtype=np.int64)
        self.qtail = np.full(n, -1, dtype=np.int64)
        self.qnext = np.full(n, -1, dtype=np.int64)
        self.resume = np.zeros(n, dtype=np.int64)
        # Registers: H, J, K, A, L (integers), T, D, X (times).
        self.registers = [np.ones(n, dtype=np.int64)] + [
            np.zeros(n, dtype=np.int64) for _ in range(4)
        ]
        self.times = [np.zeros(n, dtype=np.float64) for _ in range(3)]  # T, D, X
        faults = sim.faults
        self.node_up = faults.node_up if faults is not None else np.ones(n, dtype=np.bool_)
        self.degree = np.array([len(t) for t in sim.neighbours], dtype=np.int64)
        # Fault instructions that wait: EXCHANGE's phase and duration per node.
        self.exchanges: dict[int, tuple[int, float]] = {}
        # Python floats multiplied in ComputeModel.duration: the same IEEE doubles.
        self.factor = np.asarray(compute.factors, dtype=np.float64).copy()
        self.batch = np.array(
            [min(problem.batch_size, y.shape[0]) for y in problem.shard_y], dtype=np.int64
        )

        # Blocks of random values, per node and stream: row i holds [cursor, end).
        width = int(np.clip((1 << 23) // max(n, 1), 16, 256))
        self.timing = streams.generators("timing", n)
        pairing = streams.generators("pairing", n)
        tables = [np.asarray(t, dtype=np.int64) for t in sim.neighbours]
        timing = self.timing
        self.draw: list[Callable[[int, int], np.ndarray]] = [
            lambda i, size: compute._draw(timing[i], size, i),
            # The pairing block holds positions in the neighbour table (J and L follow).
            lambda i, size: pairing[i].integers(len(tables[i]), size=size),
        ]
        timing_width = 1 if compute._transient else width
        pairing_width = width if P.PICK_NEIGHBOUR in uses else 1
        self.buffers = [
            np.zeros((n, timing_width)),
            np.zeros((n, pairing_width), dtype=np.int64),
        ]
        if draws_steps:
            assert isinstance(local_steps, GeometricLocalSteps)
            steps_rng = streams.generators("local_steps", n)
            p = 1.0 / local_steps.mean
            self.draw.append(lambda i, size: steps_rng[i].geometric(p, size=size))
            self.buffers.append(np.zeros((n, width), dtype=np.int64))
        else:
            self.draw.append(lambda i, size: np.ones(size, dtype=np.int64))
            self.buffers.append(np.zeros((n, 1), dtype=np.int64))
        self.cursor = [np.zeros(n, dtype=np.int64) for _ in range(3)]
        self.end = [np.zeros(n, dtype=np.int64) for _ in range(3)]
        self.scratch = np.zeros(width, dtype=np.float64)
        self.preset = np.full(n, -1.0)  # a duration Python computed, used once
        # Fill every row the program will read (a row also refills on demand).
        for stream, used in (
            (TIMING, not compute._transient and (P.COMPUTE in uses or P.DRAW_DURATION in uses)),
            (PAIRING, P.PICK_NEIGHBOUR in uses),
            (STEPS, draws_steps),
        ):
            if used:
                for i in range(n):
                    self._refill(i, stream, 1)

        self.log = [np.zeros(capacity + LOG_ROOM, dtype=np.int64) for _ in range(5)]
        self.last = np.zeros(n, dtype=np.int64)
        # Messages in flight (push-sum): slots handed out from a free list.
        self.messages = self._message_slots(n + SPARE)
        # A fixed peer schedule: the neighbour tables, and each receiver's in-edges as
        # (offset, period) for AWAIT_MESSAGES (both as flat arrays with row pointers).
        self.neighbour_rows = _rows([t.tolist() for t in sim.neighbours])
        awaits = P.AWAIT_MESSAGES in uses
        I[AWAITS] = int(awaits)
        I[AWAIT_TIMEOUTS] = int(awaits and faults is not None)
        edges = P.in_schedule(resolved, sim.neighbours) if awaits else [[] for _ in range(n)]
        self.schedule_rows = _rows([[e[0] for e in row] for row in edges])
        self.schedule_rows.append(_rows([[e[1] for e in row] for row in edges])[1])
        # What each node has received of what it is owed (the interpreter's Inbox).
        self.inbox = [
            np.full(n, -1, dtype=np.int64),  # threshold
            np.zeros(n, dtype=np.int64),  # got
            np.zeros(n, dtype=np.int64),  # need
            np.full(n, -1, dtype=np.int64),  # given up up to
            np.zeros(n, dtype=np.int64),  # waiting
            np.zeros(n, dtype=np.int64),  # instruction to resume at
            np.zeros((n, AHEAD if awaits else 1), dtype=np.int64),  # early arrivals by step
        ]
        self.wait_serial = [0] * n

        # Python events (recorder, timer, ...) by id, while they are queued in the kernel.
        self.python: dict[int, tuple[Callable[[Any], None], Any]] = {}
        self._ids = 0
        # Events already scheduled (the fault model's processes) move to the kernel first;
        # then every node starts at its first instruction, as SimPy starts its processes.
        env.attach(self)
        if self.batched:
            executor.external_logs.append(self.drain)
        for node in range(n):
            self._grow()
            _ring_push(self.I, URGENT_HEAD, URGENT_LEN, *self.urgent, 0, node)

    def _message_slots(self, count: int) -> list[np.ndarray]:
        slots = [
            np.zeros(count, dtype=np.int64),  # destination
            np.zeros(count, dtype=np.float64),  # delay
            np.zeros(count, dtype=np.int64),  # wave level of the send
            np.zeros(count, dtype=np.int64),  # message id
            np.arange(count, dtype=np.int64)[::-1].copy(),  # free slots (a stack)
            np.zeros(count, dtype=np.int64),  # the sender's step
        ]
        self.I[FREE_LEN] = count
        return slots

    # -- draws, room, log ------------------------------------------------------------------

    def _refill(self, node: int, stream: int, count: int) -> None:
        """Move the node's unused values to the front of its row and draw the rest.

        ``count`` values are needed by the node's next instruction. More timing draws than
        a row holds (H larger than a block) are not buffered: the row's unused values and
        fresh draws are summed here, as ``ComputeModel.duration`` does, into
        ``preset[node]``. A duration under transient stragglers comes from the model itself.
        """
        if stream == DURATION:
            self.preset[node] = self.sim.compute.duration(
                node, count, self.env.now, self.timing[node]
            )
            return
        buffer = self.buffers[stream]
        cursor, end = self.cursor[stream], self.end[stream]
        width = buffer.shape[1]
        c, e = int(cursor[node]), int(end[node])
        kept = e - c
        if count > width:
            assert stream == TIMING
            values = np.concatenate((buffer[node, c:e], self.draw[TIMING](node, count - kept)))
            self.preset[node] = float((values * self.factor[node]).sum())
            cursor[node] = e  # the row's values are used; its next refill starts afresh
            return
        buffer[node, :kept] = buffer[node, c:e]
        buffer[node, kept:width] = self.draw[stream](node, width - kept)
        cursor[node] = 0
        end[node] = width

    def _grow(self) -> None:
        I = self.I
        size = int(I[HEAP_SIZE])
        cap = self.heap[0].shape[0]
        if size + HEAP_ROOM + 1 > cap:
            self.heap = [_wider(a, size, max(2 * cap, size + HEAP_ROOM + 1)) for a in self.heap]
        for queue, head, length, room in (
            (self.soon, SOON_HEAD, SOON_LEN, SOON_ROOM),
            (self.urgent, URGENT_HEAD, URGENT_LEN, URGENT_ROOM),
        ):
            cap = queue[0].shape[0]
            count = int(I[length])
            if count + room + 1 > cap:
                order = (int(I[head]) + np.arange(count)) % cap
                wider = max(2 * cap, count + room + 1)
                queue[:] = [_wider(a[order], count, wider) for a in queue]
                I[head] = 0
        if I[FREE_LEN] == 0:
            old = self.messages
            count = old[0].shape[0]
            new = self._message_slots(2 * count)
            for k in (0, 1, 2, 3, 5):
                new[k][:count] = old[k]
            new[4][:count] = np.arange(2 * count - 1, count - 1, -1)
            self.I[FREE_LEN] = count
            self.messages = new
        if I[AHEAD_FULL]:
            # Twice the steps beyond each threshold; an arrival at step s moves from slot
            # s mod (old width) to s mod (new width).
            I[AHEAD_FULL] = 0
            old_ahead = self.inbox[6]
            width = old_ahead.shape[1]
            wider = np.zeros((self.n, 2 * width), dtype=np.int64)
            for node, start in enumerate(self.inbox[0].tolist()):
                steps = np.arange(start + 1, start + 1 + width)
                wider[node, steps % (2 * width)] = old_ahead[node, steps % width]
            self.inbox[6] = wider

    def drain(self) -> None:
        """Hand the logged operations to the executor (batched: all at once)."""
        I = self.I
        m = int(I[LOG_LEN])
        if m == 0:
            return
        I[LOG_LEN] = 0
        code, a, b, c, level = (column[:m] for column in self.log)
        if self.batched:
            executor = self.sim.executor
            assert isinstance(executor, BatchedExecutor)
            self.last[:] = 0
            self.messages[2][:] = 0  # sends in this log are applied before any later receive
            sends = np.flatnonzero(code == P.PUSH_SEND)
            if len(sends):
                executor._message_dest.update(
                    zip(b[sends].tolist(), c[sends].tolist(), strict=True)
                )
            executor.apply_log(code.copy(), a.copy(), b.copy(), level.copy())
            return
        submit = self.sim.submit
        for op, x, y, z in zip(code.tolist(), a.tolist(), b.tolist(), c.tolist(), strict=True):
            submit(logged_operation(op, x, y, z))

    # -- the environment's kernel protocol -------------------------------------------------

    def _python_event(self, callback: Callable[[Any], None], argument: Any) -> int:
        self._ids += 1
        self.python[self._ids] = (callback, argument)
        return self._ids

    def start(self, callback: Callable[[Any], None], argument: Any) -> None:
        self._grow()
        _ring_push(
            self.I, URGENT_HEAD, URGENT_LEN, *self.urgent, EXTERNAL,
            self._python_event(callback, argument),
        )  # fmt: skip

    def schedule(self, delay: float, callback: Callable[[Any], None], argument: Any) -> None:
        self._grow()
        _schedule(
            self.I, self.F, *self.heap, *self.soon, float(delay), EXTERNAL,
            self._python_event(callback, argument),
        )  # fmt: skip

    def trigger_stop(self) -> None:
        self._grow()
        self.I[STOP_TRIGGERED] = 1
        _ring_push(self.I, SOON_HEAD, SOON_LEN, *self.soon, STOP, 0)

    def resume_node(self, instruction: int, node: int) -> None:
        """Node ``node`` goes on at ``instruction`` at this instant (an event it waited for)."""
        self._grow()
        _ring_push(self.I, SOON_HEAD, SOON_LEN, *self.soon, instruction, node)

    def _wait(self, delay: float, instruction: int, node: int) -> None:
        self._grow()
        _schedule(self.I, self.F, *self.heap, *self.soon, float(delay), instruction, node)

    def _go_on(self, node: int, instruction: int) -> None:
        self.I[PENDING_NODE] = node
        self.I[PENDING_PC] = instruction

    def _fault_instruction(self, i: int, pc: int) -> None:
        """Run a fault instruction of node ``i`` as the SimPy interpreter does."""
        faults = self.sim.faults
        assert faults is not None
        resolved = self.resolved
        code = int(resolved.op[pc])
        if code == P.AWAIT_MESSAGES:
            # The kernel left the node waiting; it gives up after the fault timeout.
            self.wait_serial[i] += 1
            self.schedule(faults.timeout, self._give_up, (i, self.wait_serial[i]))
            return
        j = int(self.registers[1][i])
        X = self.times[2]
        seconds = resolved.seconds(pc, int(self.registers[4][i]))
        target = int(resolved.target[pc])
        if code == P.WAIT_UP:
            faults.wait_up(i).waiters.append((pc + 1, i))
        elif code == P.MESSAGE:
            delay = faults.message(i, seconds) if faults.reachable(i, j) else None
            if delay is None:
                faults.note_failed_attempt(last=True)
                self._go_on(i, target)
            else:
                X[i] = delay
                self._go_on(i, pc + 1)
        elif code == P.EXCHANGE:
            # Phase 0: start; 1: its messages arrived (partner still reachable?); 2: failed,
            # the timeout is over. The node waits between phases.
            phase, duration = self.exchanges.pop(i, (0, 0.0))
            if phase == 0:
                duration_or_none = faults.exchange(i, j, seconds)
                if duration_or_none is not None:
                    self.exchanges[i] = (1, duration_or_none)
                    self._wait(duration_or_none, pc, i)
                    return
                phase = 1
                duration = -1.0
            if phase == 1:
                if duration >= 0.0 and faults.reachable(i, j):
                    X[i] = duration
                    self._go_on(i, pc + 1)
                    return
                self.exchanges[i] = (2, 0.0)
                self._wait(faults.timeout, pc, i)
                return
            faults.note_failed_attempt(last=int(self.registers[3][i]) == self.degree[i] - 1)
            self._go_on(i, target)
        else:
            raise ValueError(f"compiled loop: unknown instruction {code} at {pc}")

    def _give_up(self, argument: tuple[int, int]) -> None:
        """The timeout of a wait for messages (the interpreter's ``Inbox._give_up``)."""
        i, serial = argument
        threshold, got, need, given_up, waiting, resume, _ = self.inbox
        if not waiting[i] or serial != self.wait_serial[i]:
            return  # the messages came in time
        faults = self.sim.faults
        assert faults is not None
        faults.note_failed_attempt(last=True)
        got[i] = need[i]
        given_up[i] = threshold[i]
        waiting[i] = 0
        self.resume_node(int(resume[i]), i)

    def _sync(self) -> None:
        """Copy the kernel's clock and counters to the environment and the simulation."""
        I, F, sim = self.I, self.F, self.sim
        self.env.now = float(F[NOW])
        sim.interactions = int(I[INTERACTIONS])
        sim.local_steps = int(I[LOCAL_STEPS])
        sim.samples = int(I[SAMPLES])
        sim.idle_time = float(F[IDLE])
        sim.comm_time = float(F[COMM])
        if I[STOP_REASON]:
            # The kernel requested the stop (interactions / epochs) and queued its event.
            sim.stop_requested(STOP_REASONS[int(I[STOP_REASON])])

    def run(self, until: LeanEvent) -> None:
        I = self.I
        sim = self.sim
        # Counters the kernel owns from here on start from the simulation's.
        I[INTERACTIONS], I[LOCAL_STEPS], I[SAMPLES] = (
            sim.interactions,
            sim.local_steps,
            sim.samples,
        )
        self.F[IDLE], self.F[COMM] = sim.idle_time, sim.comm_time
        resolved = self.resolved
        while True:
            try:
                code = run_kernel(
                    I, self.F, *self.heap, *self.soon, *self.urgent,
                    self.held, self.qhead, self.qtail, self.qnext, self.resume,
                    *self.registers, *self.times,
                    resolved.op, resolved.arg, resolved.target, resolved.constants,
                    resolved.linked,
                    self.node_up, self.degree,
                    self.factor, self.batch,
                    self.buffers[TIMING], self.cursor[TIMING], self.end[TIMING],
                    self.buffers[PAIRING], self.cursor[PAIRING], self.end[PAIRING],
                    self.buffers[STEPS], self.cursor[STEPS], self.end[STEPS],
                    self.scratch, self.preset, *self.log, self.last,
                    *self.messages, *self.neighbour_rows, *self.schedule_rows, *self.inbox,
                )  # fmt: skip
            finally:
                self._sync()  # also when interrupted: the clock and counters stay true
            if code == R_EXTERNAL:
                callback, argument = self.python.pop(int(I[ARG]))
                callback(argument)
            elif code == R_NEED:
                self._refill(int(I[NEED_NODE]), int(I[NEED_STREAM]), int(I[NEED_COUNT]))
            elif code == R_LOGFULL:
                self.drain()
            elif code == R_GROW:
                self._grow()
            elif code == R_CALL:
                self._fault_instruction(int(I[CALL_NODE]), int(I[CALL_PC]))
            elif code == R_STOP:
                return
            elif code == R_EMPTY:
                raise RuntimeError(
                    f'No scheduled events left but "until" event was not triggered: {until}'
                )


def _rows(rows: list[list[int]]) -> list[np.ndarray]:
    """Row pointers and the values of ``rows``, flattened (CSR without columns)."""
    pointers = np.zeros(len(rows) + 1, dtype=np.int64)
    pointers[1:] = np.cumsum([len(row) for row in rows])
    values = np.array([v for row in rows for v in row] + [0], dtype=np.int64)
    return [pointers, values]


def _wider(values: np.ndarray, count: int, capacity: int) -> np.ndarray:
    """``values[:count]`` at the front of an array of ``capacity`` entries."""
    out = np.zeros(capacity, dtype=values.dtype)
    out[:count] = values[:count]
    return out
