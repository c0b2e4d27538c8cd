"""SwarmSGD's event loop compiled with numba: the fastest path of ``engine.executor: batched``.

The same node logic as :mod:`gossipsim.algorithms.gossip.swarmsgd_fast` (which is the same
as the SimPy generators in :mod:`gossipsim.algorithms.gossip.swarmsgd`), written over
arrays so that numba can compile the whole loop: the three queues of
:class:`~gossipsim.engine.lean.LeanEnvironment` (urgent starts, the ``(time, insertion)``
heap, the same-instant FIFO), the node locks replaying ``simpy.Resource(capacity=1)``
(per-lock FIFO queues as linked lists), and the operation log of the batched executor.
Events are ``(kind, node)`` pairs; the kinds are the continuations between two ``yield``
statements of the SimPy processes.

The kernel returns to Python whenever Python has to act, and is then called again with the
same state:

* a Python event is due (the recorder, the timer, anything scheduled through the
  environment): its callback runs with ``env.now`` and the simulation's counters in sync;
* the stop event is processed (the run ends);
* a node's block of pre-drawn random values is used up: Python draws the next block from
  the node's own stream (values handed out in the same order as one draw at a time, see
  :mod:`gossipsim.engine.draws`), before the event that needs them is taken off its queue;
* the operation log is full (the batched executor applies it), a queue needs more room,
  or an event budget is spent (so that Ctrl-C is seen within a fraction of a second).

``tests/test_batched_schedule.py`` holds this path to SimPy: same operations at the same
times in the same order, same recorded rows, same counters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from gossipsim.config import FixedLocalSteps, GeometricLocalSteps, SwarmSGDConfig
from gossipsim.engine.batched import BUFFER, LOCAL, PAIR, BatchedExecutor
from gossipsim.engine.executor import BufferExchange, LocalSteps, PairAverage
from gossipsim.engine.lean import LeanEnvironment, LeanEvent
from gossipsim.engine.simulation import Simulation
from gossipsim.jit import jit

# Event kinds: SwarmSGD's continuations, a Python event, and the stop event.
TOP, OWN, COMPUTE, FIRST, SECOND, EXCHANGE, RELEASE, EXTERNAL, STOP, NB_COMPUTE, NB_READ = range(11)
# Why the kernel returned.
R_STOP, R_EXTERNAL, R_NEED, R_LOGFULL, R_GROW, R_BUDGET, R_EMPTY = range(7)
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
    NONBLOCKING,
    FIXED_STEPS,
    ARG,
    PAIR_CODE,
    LOCAL_CODE,
    EVENTS,
    N_INTS,
) = range(25)
# Slots of the float state vector.
NOW, IDLE, COMM, MESSAGE_TIME, EXCHANGE_TIME, EPOCHS_LIMIT, N_FLOATS = range(7)
# Random streams served in blocks.
TIMING, PAIRING, STEPS = range(3)
# Stop rules the kernel itself applies (the others are Python's: time, target loss, ...).
BY_INTERACTIONS, BY_EPOCHS = 1, 2
STOP_REASONS = {BY_INTERACTIONS: "interactions", BY_EPOCHS: "epochs"}
BUDGET = 1 << 20  # events per kernel call (the kernel does not see signals)
SOON_ROOM = 8  # an event pushes at most 4 same-instant events
HEAP_ROOM = 2  # and at most 1 timed one
SPARE = 64  # queue entries beyond the nodes' own when a run starts (queues grow as needed)


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
def _log(lcode, la, lb, llevel, m, code, a, b, level):
    lcode[m] = code
    la[m] = a
    lb[m] = b
    llevel[m] = level


@jit()
def run_kernel(
    I,
    F,
    ht,
    hs,
    hk,
    hn,
    sk,
    sn,
    uk,
    un,
    held,
    qhead,
    qtail,
    qnext,
    resume,
    steps,
    partner,
    waiting,
    factor,
    batch,
    tbuf,
    tcur,
    tend,
    pbuf,
    pcur,
    pend,
    gbuf,
    gcur,
    gend,
    scratch,
    preset,
    lcode,
    la,
    lb,
    llevel,
    last,
):
    """Process events until Python has to act; returns the reason (``R_*``)."""
    nonblocking = I[NONBLOCKING] != 0
    fixed = I[FIXED_STEPS]
    pair_code = I[PAIR_CODE]
    local_code = I[LOCAL_CODE]
    epochs_limit = F[EPOCHS_LIMIT]
    interactions_limit = I[INTERACTIONS_LIMIT]
    n_train = I[N_TRAIN]
    log_cap = I[LOG_CAP]
    message_time = F[MESSAGE_TIME]
    exchange_time = F[EXCHANGE_TIME]
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
    budget = BUDGET
    while True:
        if budget == 0:
            reason = R_BUDGET
            break
        budget -= 1
        if m >= log_cap:
            reason = R_LOGFULL
            break
        if slen + SOON_ROOM > soon_cap or size + HEAP_ROOM > heap_cap:
            reason = R_GROW
            break
        # The next event, as LeanEnvironment.run picks it (not yet taken off its queue).
        if ulen > 0:
            source = 0
            kind = uk[uhead]
            i = un[uhead]
        elif slen > 0 and not (size > 0 and ht[0] == now):
            source = 1
            kind = sk[shead]
            i = sn[shead]
        elif size > 0:
            source = 2
            kind = hk[0]
            i = hn[0]
        else:
            reason = R_EMPTY
            break
        # Random values the event will draw must be in its node's blocks.
        if fixed == 0 and (kind == TOP or kind == EXCHANGE or kind == NB_READ):
            if gcur[i] == gend[i]:
                I[NEED_NODE] = i
                I[NEED_STREAM] = STEPS
                I[NEED_COUNT] = 1
                reason = R_NEED
                break
        if kind == OWN or (nonblocking and (kind == TOP or kind == NB_READ)):
            if kind == OWN:
                s = steps[i]
            elif fixed == 0:
                s = gbuf[i, gcur[i]]
            else:
                s = fixed
            if preset[i] < 0.0 and tend[i] - tcur[i] < s:
                I[NEED_NODE] = i
                I[NEED_STREAM] = TIMING
                I[NEED_COUNT] = s
                reason = R_NEED
                break
        if (kind == COMPUTE or kind == NB_COMPUTE) and pcur[i] == pend[i]:
            I[NEED_NODE] = i
            I[NEED_STREAM] = PAIRING
            I[NEED_COUNT] = 1
            reason = R_NEED
            break
        # Take it off its queue.
        if source == 0:
            uhead += 1
            if uhead == urgent_cap:
                uhead = 0
            ulen -= 1
        elif source == 1:
            shead += 1
            if shead == soon_cap:
                shead = 0
            slen -= 1
        else:
            now = ht[0]
            _heap_remove_top(ht, hs, hk, hn, size)
            size -= 1
        events += 1

        if kind == EXTERNAL:
            I[ARG] = i
            reason = R_EXTERNAL
            break
        if kind == STOP:
            reason = R_STOP
            break
        if kind == RELEASE:
            # The release event of lock i grants the head of its queue, if any.
            slen = _grant(i, held, qhead, qnext, resume, sk, sn, shead, slen)
            continue
        if kind == OWN:
            # Own lock held: compute.
            at = now + _compute_time(i, steps[i], factor, tbuf, tcur, scratch, preset)
            slen, size, seq = _schedule_at(
                at, now, COMPUTE, i, sk, sn, shead, slen, ht, hs, hk, hn, size, seq
            )
            continue
        if kind == FIRST:
            j = partner[i]
            slen = _request(
                j if i < j else i, i, SECOND, held, qhead, qtail, qnext, resume, sk, sn, shead, slen
            )
            continue
        if kind == SECOND:
            idle += now - waiting[i]
            slen, size, seq = _schedule_at(
                now + message_time, now, EXCHANGE, i, sk, sn, shead, slen, ht, hs, hk, hn, size, seq
            )
            continue
        if kind == COMPUTE or kind == NB_COMPUTE:
            s = steps[i]
            level = last[i] + 1
            last[i] = level
            _log(lcode, la, lb, llevel, m, local_code, i, s, level)
            m += 1
            local_steps += s
            samples += s * batch[i]
            if epochs_limit == epochs_limit and samples / n_train >= epochs_limit:
                stop_triggered, stop_reason, slen = _request_stop(
                    stop_triggered, stop_reason, BY_EPOCHS, sk, sn, shead, slen
                )
            j = pbuf[i, pcur[i]]
            pcur[i] += 1
            partner[i] = j
            if kind == NB_COMPUTE:
                slen, size, seq = _schedule_at(
                    now + message_time, now, NB_READ, i, sk, sn, shead, slen,
                    ht, hs, hk, hn, size, seq,
                )  # fmt: skip
                continue
            held[i] = 0  # release the own lock
            _put(sk, sn, shead, slen, RELEASE, i)
            slen += 1
            waiting[i] = now
            slen = _request(
                i if i < j else j, i, FIRST, held, qhead, qtail, qnext, resume, sk, sn, shead, slen
            )
            continue
        if kind == EXCHANGE or kind == NB_READ:
            j = partner[i]
            comm += exchange_time
            li = last[i]
            lj = last[j]
            level = (li if li > lj else lj) + 1
            last[i] = level
            last[j] = level
            _log(lcode, la, lb, llevel, m, pair_code, i, j, level)
            m += 1
            interactions += 1
            if interactions_limit >= 0 and interactions >= interactions_limit:
                stop_triggered, stop_reason, slen = _request_stop(
                    stop_triggered, stop_reason, BY_INTERACTIONS, sk, sn, shead, slen
                )
            if kind == EXCHANGE:
                # Leave the inner ``with`` (the larger id), then the outer one.
                first = i if i < j else j
                second = j if i < j else i
                held[second] = 0
                _put(sk, sn, shead, slen, RELEASE, second)
                slen += 1
                held[first] = 0
                _put(sk, sn, shead, slen, RELEASE, first)
                slen += 1
            # fall through to the top of the node's loop
        # TOP (also reached from EXCHANGE / NB_READ): draw H, then lock or compute.
        if fixed == 0:
            steps[i] = gbuf[i, gcur[i]]
            gcur[i] += 1
        if nonblocking:
            at = now + _compute_time(i, steps[i], factor, tbuf, tcur, scratch, preset)
            slen, size, seq = _schedule_at(
                at, now, NB_COMPUTE, i, sk, sn, shead, slen, ht, hs, hk, hn, size, seq
            )
        else:
            slen = _request(i, i, OWN, held, qhead, qtail, qnext, resume, sk, sn, shead, slen)
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
    return reason


# -- the Python side ---------------------------------------------------------------------------


def supported(sim: Simulation, config: SwarmSGDConfig) -> bool:
    """Whether the compiled loop covers this run (else the Python fast path runs it)."""
    env = sim.env
    return (
        isinstance(env, LeanEnvironment)
        and env.compiled
        and sim.faults is None
        and not sim.compute._transient  # on/off periods interleave with the step draws
        and isinstance(config.local_steps, (FixedLocalSteps, GeometricLocalSteps))
    )


class SwarmKernel:
    """Drives :func:`run_kernel` for one simulation (it is the environment's ``kernel``)."""

    def __init__(self, sim: Simulation, config: SwarmSGDConfig, message_time: float) -> None:
        env = sim.env
        assert isinstance(env, LeanEnvironment)
        self.sim = sim
        self.env = env
        n = sim.n
        self.n = n
        streams = sim.streams
        compute = sim.compute
        local_steps = config.local_steps
        fixed = local_steps.value if isinstance(local_steps, FixedLocalSteps) else 0
        problem = sim.problem
        executor = sim.executor
        self.batched = isinstance(executor, BatchedExecutor)

        I = np.zeros(N_INTS, dtype=np.int64)
        F = np.zeros(N_FLOATS, dtype=np.float64)
        I[N_TRAIN] = problem.n_train
        limit = sim.config.stop.interactions
        I[INTERACTIONS_LIMIT] = -1 if limit is None else limit
        I[NONBLOCKING] = int(config.nonblocking)
        I[FIXED_STEPS] = fixed
        I[PAIR_CODE] = BUFFER if config.nonblocking else PAIR
        I[LOCAL_CODE] = LOCAL
        # The log: the batched executor's own capacity, else one operation at a time so that
        # each is submitted at its own instant.
        capacity = executor.flush_every if isinstance(executor, BatchedExecutor) else 1
        I[LOG_CAP] = capacity
        F[NOW] = env.now
        F[MESSAGE_TIME] = message_time
        # Blocking: both partners send at once; non-blocking: one read, one write-back.
        F[EXCHANGE_TIME] = message_time if config.nonblocking else 2 * message_time
        epochs = sim.config.stop.epochs
        F[EPOCHS_LIMIT] = math.nan if epochs is None else epochs
        self.I, self.F = I, F

        room = n + SPARE
        self.heap = [np.zeros(room, dtype=np.float64)] + [
            np.zeros(room, dtype=np.int64) for _ in range(3)
        ]
        self.soon = [np.zeros(n + SPARE, dtype=np.int64) for _ in range(2)]
        self.urgent = [np.zeros(n + SPARE, dtype=np.int64) for _ in range(2)]

        self.held = np.zeros(n, dtype=np.int64)
        self.qhead = np.full(n, -1, dtype=np.int64)
        self.qtail = np.full(n, -1, dtype=np.int64)
        self.qnext = np.full(n, -1, dtype=np.int64)
        self.resume = np.zeros(n, dtype=np.int64)
        self.steps = np.full(n, max(fixed, 1), dtype=np.int64)
        self.partner = np.zeros(n, dtype=np.int64)
        self.waiting = np.zeros(n, dtype=np.float64)
        # Python floats multiplied in NodeClock: the same IEEE doubles.
        self.factor = np.asarray(compute.factors, dtype=np.float64).copy()
        self.batch = np.array(
            [min(problem.batch_size, y.shape[0]) for y in problem.shard_y], dtype=np.int64
        )

        # Blocks of random values, per node and stream: row i holds [cursor, end).
        width = int(np.clip((1 << 20) // max(n, 1), 16, 256))
        timing = streams.generators("timing", n)
        pairing = streams.generators("pairing", n)
        tables = [np.asarray(t, dtype=np.int64) for t in sim.neighbours]
        self.draw: list[Callable[[int, int], np.ndarray]] = [
            lambda i, size: compute._draw(timing[i], size),
            lambda i, size: tables[i][pairing[i].integers(len(tables[i]), size=size)],
        ]
        self.buffers = [np.zeros((n, width)), np.zeros((n, width), dtype=np.int64)]
        if fixed == 0:
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
        self.preset = np.full(n, -1.0)  # durations of more steps than a block (see _refill)
        for stream in (TIMING, PAIRING) if fixed else (TIMING, PAIRING, STEPS):
            for i in range(n):
                self._refill(i, stream, 1)

        self.lcode = np.zeros(capacity, dtype=np.int64)
        self.la = np.zeros(capacity, dtype=np.int64)
        self.lb = np.zeros(capacity, dtype=np.int64)
        self.llevel = np.zeros(capacity, dtype=np.int64)
        self.last = np.zeros(n, dtype=np.int64)

        # Python events (recorder, timer, ...) by id, while they are queued in the kernel.
        self.python: dict[int, tuple[Callable[[Any], None], Any]] = {}
        self._ids = 0
        env.attach(self)
        if isinstance(executor, BatchedExecutor):  # self.batched
            executor.external_logs.append(self.drain)
        urgent_kind, urgent_node = self.urgent
        urgent_kind[:n] = TOP
        urgent_node[:n] = np.arange(n)
        I[URGENT_LEN] = n

    # -- draws, room, log ------------------------------------------------------------------

    def _refill(self, node: int, stream: int, count: int) -> None:
        """Move the node's unused values to the front of its row and draw the rest.

        ``count`` values are needed by the node's next event. More timing draws than a row
        holds (H larger than a block) are not buffered: the row's unused values and fresh
        draws are summed here, as ``NodeClock`` does, into ``preset[node]``.
        """
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
        if size + HEAP_ROOM > cap:
            self.heap = [_wider(a, size, max(2 * cap, size + HEAP_ROOM)) for a in self.heap]
        for queue, head, length in ((self.soon, SOON_HEAD, SOON_LEN), (self.urgent,
                                    URGENT_HEAD, URGENT_LEN)):  # fmt: skip
            cap = queue[0].shape[0]
            count = int(I[length])
            if count + SOON_ROOM > cap:
                order = (int(I[head]) + np.arange(count)) % cap
                wider = max(2 * cap, count + SOON_ROOM)
                queue[:] = [_wider(a[order], count, wider) for a in queue]
                I[head] = 0

    def drain(self) -> None:
        """Hand the logged operations to the executor (batched: all at once)."""
        I = self.I
        m = int(I[LOG_LEN])
        if m == 0:
            return
        I[LOG_LEN] = 0
        if self.batched:
            self.last[:] = 0
            executor = cast(BatchedExecutor, self.sim.executor)
            executor.apply_log(self.lcode[:m], self.la[:m], self.lb[:m], self.llevel[:m])
            return
        submit = self.sim.submit
        for code, a, b in zip(
            self.lcode[:m].tolist(), self.la[:m].tolist(), self.lb[:m].tolist(), strict=True
        ):
            if code == LOCAL:
                submit(LocalSteps(a, b))
            elif code == PAIR:
                submit(PairAverage(a, b))
            else:
                submit(BufferExchange(a, b))

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
        while True:
            try:
                code = run_kernel(
                    I, self.F, *self.heap, *self.soon, *self.urgent,
                    self.held, self.qhead, self.qtail, self.qnext, self.resume, self.steps,
                    self.partner, self.waiting, self.factor, self.batch,
                    self.buffers[TIMING], self.cursor[TIMING], self.end[TIMING],
                    self.buffers[PAIRING], self.cursor[PAIRING], self.end[PAIRING],
                    self.buffers[STEPS], self.cursor[STEPS], self.end[STEPS],
                    self.scratch, self.preset, self.lcode, self.la, self.lb, self.llevel,
                    self.last,
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
            elif code == R_STOP:
                return
            elif code == R_EMPTY:
                raise RuntimeError(
                    f'No scheduled events left but "until" event was not triggered: {until}'
                )


def _wider(values: np.ndarray, count: int, capacity: int) -> np.ndarray:
    """``values[:count]`` at the front of an array of ``capacity`` entries."""
    out = np.zeros(capacity, dtype=values.dtype)
    out[:count] = values[:count]
    return out


def start_compiled(sim: Simulation, config: SwarmSGDConfig, message_time: float) -> SwarmKernel:
    """Start every node of SwarmSGD in the compiled loop (the environment's new kernel)."""
    return SwarmKernel(sim, config, message_time)
