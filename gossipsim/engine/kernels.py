"""Compiled (numba) kernels of the batched executor for the linear objectives.

For least squares, logistic and softmax regression (a :class:`DenseNet` with no hidden layer
and one of the three heads) a minibatch gradient needs each sample row once: its logits, the
head's output gradient and the row's contribution to the gradient all follow from the row
alone. The kernels below therefore read every minibatch row of ``features`` in place (no
gathered copy of the rows, which the numpy path makes and then reads twice more) and apply
the local steps of a whole wave of nodes in one call.

The math is that of :mod:`gossipsim.objectives`: weight gradient ``Xᵀ·dout``, bias gradient
the sum of ``dout`` over the batch (``dout`` already divided by the node's batch size), plus
``l2·w`` on every parameter. Sums run in a fixed order; results agree with the numpy path to
rounding (not bit for bit: BLAS sums in another order).

Minibatch indices come from :class:`gossipsim.engine.batched.MinibatchSampler`'s buffer: a
kernel consumes ``batch[node]`` indices per step from ``buffer[node, cursor[node]:]`` and
stops, returning the position it reached, as soon as a node's buffer runs short; the caller
refills that node's buffer from its ``sampling`` stream (numpy draws, so the indices are
exactly those of the sequential executor) and calls again from there.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import config, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from gossipsim.engine.jit import jit
from gossipsim.engine.schedule import lr_at
from gossipsim.objectives.base import Objective
from gossipsim.objectives.heads import LogisticHead, SoftmaxHead, SquaredHead

# Whether the batched executor uses the gradient kernels for linear objectives. They agree
# with the numpy path to rounding, not bit for bit (tests/test_batched_equivalence.py holds
# them to 1e-12 relative); switching them off gives the numpy path back.
LINEAR_ENABLED = True

# Head codes understood by the kernels.
SQUARED, LOGISTIC, SOFTMAX = 0, 1, 2
_HEADS = {SquaredHead: SQUARED, LogisticHead: LOGISTIC, SoftmaxHead: SOFTMAX}


def linear_head(objective: Objective) -> int | None:
    """The kernels' head code for ``objective``, or None when the kernels do not cover it.

    Covered: a network with no hidden layer (``sizes == [f, m]``) and a squared, logistic or
    softmax head (exact types, so a subclass with other math falls back to numpy).
    """
    net = getattr(objective, "net", None)
    head = getattr(objective, "head", None)
    if net is None or head is None or len(net.sizes) != 2:
        return None
    code = _HEADS.get(type(head))
    if code is None or net.sizes[1] != head.n_outputs:
        return None
    return code


def _prefetch_hint(typingctx, array, position):
    """Hint the CPU to load the cache line holding ``array.ravel()[position]`` (C order).

    A prefetch never faults, so ``position`` need not be checked. Used to start the
    random-row reads of the next minibatch while the current one is being computed.
    """
    if not (isinstance(array, types.Array) and isinstance(position, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.bitcast(builder.gep(ary.data, [offset]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        # read, keep in all cache levels, data cache
        builder.call(
            prefetch, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        )
        return context.get_dummy_value()

    return types.void(array, position), codegen


if config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 (debugging): plain Python, a prefetch does nothing

    def _prefetch(array: np.ndarray, position: int) -> None:
        return None

else:
    _prefetch = intrinsic(_prefetch_hint)


@jit(nogil=True)
def _prefetch_row(features: np.ndarray, targets: np.ndarray, row: int) -> None:
    """Prefetch one feature row (every 64-byte line of it) and its target."""
    f = features.shape[1]
    first = row * f
    for k in range(0, f, 8):  # 8 float64 per 64-byte line
        _prefetch(features, first + k)
    _prefetch(features, first + f - 1)
    _prefetch(targets, row)


@jit(nogil=True, fastmath={"reassoc", "contract"})
def _dot(features: np.ndarray, row: int, w: np.ndarray) -> float:
    """``features[row] · w[:f]``, summed in whatever order vectorizes (the BLAS liberty)."""
    total = 0.0
    for k in range(features.shape[1]):
        total += features[row, k] * w[k]
    return total


@jit(nogil=True)
def _minibatch_gradient(
    w: np.ndarray,
    g: np.ndarray,
    features: np.ndarray,
    targets: np.ndarray,
    indices: np.ndarray,
    at: int,
    b: int,
    base: int,
    l2: float,
    head: int,
    rows: np.ndarray,
    Z: np.ndarray,
    next_indices: np.ndarray,
    next_at: int,
    next_b: int,
    next_base: int,
) -> None:
    """Write into ``g`` the gradient at ``w`` on rows ``base + indices[at:at + b]``.

    ``w`` has layout ``(f + 1, m)`` row-major (weights, then the bias row). ``rows`` and
    ``Z`` (at least ``b`` and ``(b, m)``) are scratch: the rows, then the logits and the
    head's output gradients. Three passes over the rows: logits, head, gradient.

    While the logits pass reads the rows, it prefetches those of the *next* minibatch,
    ``next_base + next_indices[next_at:next_at + next_b]`` (``next_b = 0``: none), one row
    per row, so that the next gradient's random reads overlap this one's arithmetic.
    """
    f = features.shape[1]
    m = Z.shape[1]
    bias = f * m
    for j in range(b):
        rows[j] = base + indices[at + j]
    for j in range(b, next_b):
        _prefetch_row(features, targets, next_base + next_indices[next_at + j])
    # Logits, as matmul then bias: z = x·W + b.
    if m == 1:
        for j in range(b):
            if j < next_b:
                _prefetch_row(features, targets, next_base + next_indices[next_at + j])
            Z[j, 0] = _dot(features, rows[j], w) + w[bias]
    else:
        for j in range(b):
            if j < next_b:
                _prefetch_row(features, targets, next_base + next_indices[next_at + j])
            row = rows[j]
            for c in range(m):
                Z[j, c] = 0.0
            for k in range(f):
                xk = features[row, k]
                for c in range(m):
                    Z[j, c] += xk * w[k * m + c]
            for c in range(m):
                Z[j, c] += w[bias + c]
    # Output gradients of the mean loss (each divided by the batch size).
    if head == SQUARED:
        for j in range(b):
            Z[j, 0] = (Z[j, 0] - float(targets[rows[j]])) / b
    elif head == LOGISTIC:
        for j in range(b):
            Z[j, 0] = (1.0 / (1.0 + np.exp(-Z[j, 0])) - float(targets[rows[j]])) / b
    else:
        for j in range(b):
            top = Z[j, 0]
            for c in range(1, m):
                if Z[j, c] > top:
                    top = Z[j, c]
            total = 0.0
            for c in range(m):
                Z[j, c] -= top
                total += np.exp(Z[j, c])
            lse = np.log(total)
            for c in range(m):
                Z[j, c] = np.exp(Z[j, c] - lse)
            Z[j, int(targets[rows[j]])] -= 1.0
            for c in range(m):
                Z[j, c] /= b
    # Gradient: Xᵀ·dout for the weights, the column sums of dout for the bias.
    for k in range(f + 1):
        for c in range(m):
            g[k * m + c] = 0.0
    for j in range(b):
        row = rows[j]
        if m == 1:
            dz = Z[j, 0]
            for k in range(f):
                g[k] += features[row, k] * dz
            g[bias] += dz
        else:
            for k in range(f):
                xk = features[row, k]
                for c in range(m):
                    g[k * m + c] += xk * Z[j, c]
            for c in range(m):
                g[bias + c] += Z[j, c]
    if l2 != 0.0:
        for k in range(g.shape[0]):
            g[k] += l2 * w[k]


@jit(nogil=True)
def _following(
    nodes: np.ndarray,
    r: int,
    buffer: np.ndarray,
    cursor: np.ndarray,
    capacity: np.ndarray,
    batch: np.ndarray,
    offsets: np.ndarray,
    indices: np.ndarray,
) -> tuple[np.ndarray, int, int, int]:
    """The minibatch of the node after position ``r``, to prefetch while computing.

    ``(index row, cursor, batch size, shard offset)``; a batch size of 0 (with ``indices``
    as a placeholder row) when there is no next node or its buffer needs a refill first.
    """
    if r + 1 < nodes.shape[0]:
        after = nodes[r + 1]
        if cursor[after] + batch[after] <= capacity[after]:
            return buffer[after], cursor[after], batch[after], offsets[after]
    return indices, 0, 0, 0


@jit(nogil=True)
def local_steps(
    models: np.ndarray,
    nodes: np.ndarray,
    steps: np.ndarray,
    start: int,
    schedule: np.ndarray,
    counter: np.ndarray,
    clock: np.ndarray,
    per_unit: np.ndarray,
    velocity: np.ndarray,
    momentum: float,
    nesterov: bool,
    features: np.ndarray,
    targets: np.ndarray,
    buffer: np.ndarray,
    cursor: np.ndarray,
    capacity: np.ndarray,
    batch: np.ndarray,
    offsets: np.ndarray,
    l2: float,
    head: int,
    m: int,
) -> int:
    """Apply ``steps[r]`` SGD steps to ``models[nodes[r]]``, for r from ``start``.

    A step of node i is ``w -= lr·g`` with ``lr = lr_at(schedule, clock[i]·per_unit[i])``
    (:mod:`gossipsim.engine.schedule`); ``counter[i]`` (the node's applied steps) grows by
    one per step, and ``clock`` may be that same array (the clock counts steps) or another
    one that the steps leave alone (synchronous rounds). With ``momentum`` μ > 0 the step
    goes through the node's buffer ``velocity[i]``: ``v = μ·v + g`` and ``w -= lr·v``
    (``nesterov``: ``w -= lr·(g + μ·v)``); with μ = 0 ``velocity`` is never read.

    Each node's steps run one after the other (each at the model the previous one left).
    ``steps`` counts down as steps are applied. Returns ``len(nodes)`` when done, or the
    position r of a node whose index buffer holds less than one batch (the caller refills
    it and calls again with ``start = r``).
    """
    d = models.shape[1]
    g = np.empty(d)
    widest = max(1, int(batch.max()))
    rows = np.empty(widest, dtype=np.int64)
    Z = np.empty((widest, m))
    total = nodes.shape[0]
    for r in range(start, total):
        node = nodes[r]
        b = batch[node]
        base = offsets[node]
        w = models[node]
        indices = buffer[node]
        if r + 2 < total:
            ahead = nodes[r + 2]
            _prefetch(buffer, ahead * buffer.shape[1] + cursor[ahead])
            _prefetch(models, ahead * d)
        while steps[r] > 0:
            at = cursor[node]
            if at + b > capacity[node]:
                return r
            # Load the next minibatch meanwhile: this node's next step, or the next node's.
            if steps[r] > 1:
                next_b = b if at + 2 * b <= capacity[node] else 0
                next_indices, next_at, next_base = indices, at + b, base
            else:
                next_indices, next_at, next_b, next_base = _following(
                    nodes, r, buffer, cursor, capacity, batch, offsets, indices
                )
            _minibatch_gradient(
                w, g, features, targets, indices, at, b, base, l2, head, rows, Z,
                next_indices, next_at, next_b, next_base,
            )  # fmt: skip
            lr = lr_at(schedule, clock[node] * per_unit[node])
            if momentum == 0.0:
                for k in range(d):
                    w[k] -= lr * g[k]
            else:
                v = velocity[node]
                for k in range(d):
                    vk = momentum * v[k] + g[k]
                    v[k] = vk
                    if nesterov:
                        w[k] -= lr * (g[k] + momentum * vk)
                    else:
                        w[k] -= lr * vk
            counter[node] += 1
            cursor[node] = at + b
            steps[r] -= 1
    return total


#: Operations per task of :func:`local_steps_parallel` (a wave holds hundreds).
PARALLEL_CHUNK = 16
#: Waves with at least this many nodes take their steps on all cores.
PARALLEL_WAVE = 64


@jit(nogil=True, parallel=True)
def local_steps_parallel(models: np.ndarray, nodes: np.ndarray, steps: np.ndarray, *rest) -> None:
    """:func:`local_steps` of distinct ``nodes`` on all cores, in chunks of consecutive nodes
    (``rest``: the arguments of :func:`local_steps` after ``start``).

    Every node's index buffer must hold the minibatches of all its steps (no refill). The
    nodes share nothing: each one's steps are the same arithmetic, in the same order, as in
    :func:`local_steps`, so the models do not depend on the number of threads.
    """
    total = nodes.shape[0]
    chunks = (total + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    for chunk in prange(chunks):
        lo = chunk * PARALLEL_CHUNK
        hi = min(total, lo + PARALLEL_CHUNK)
        local_steps(models, nodes[lo:hi], steps[lo:hi], 0, *rest)


@jit(nogil=True)
def gradients(
    W: np.ndarray,
    G: np.ndarray,
    nodes: np.ndarray,
    start: int,
    features: np.ndarray,
    targets: np.ndarray,
    buffer: np.ndarray,
    cursor: np.ndarray,
    capacity: np.ndarray,
    batch: np.ndarray,
    offsets: np.ndarray,
    l2: float,
    head: int,
    m: int,
) -> int:
    """Write into ``G[r]`` one minibatch gradient of ``nodes[r]`` at ``W[r]``, from ``start``.

    Returns ``len(nodes)`` when done, or the position of a node whose index buffer runs
    short (refill it and call again from there), as :func:`local_steps`.
    """
    widest = max(1, int(batch.max()))
    rows = np.empty(widest, dtype=np.int64)
    Z = np.empty((widest, m))
    total = nodes.shape[0]
    for r in range(start, total):
        node = nodes[r]
        b = batch[node]
        at = cursor[node]
        if at + b > capacity[node]:
            return r
        next_indices, next_at, next_b, next_base = _following(
            nodes, r, buffer, cursor, capacity, batch, offsets, buffer[node]
        )
        _minibatch_gradient(
            W[r], G[r], features, targets, buffer[node], at, b, offsets[node], l2, head, rows, Z,
            next_indices, next_at, next_b, next_base,
        )  # fmt: skip
        cursor[node] = at + b
    return total


@jit(nogil=True, parallel=True)
def gradients_parallel(W: np.ndarray, G: np.ndarray, nodes: np.ndarray, *rest) -> None:
    """:func:`gradients` of distinct ``nodes`` on all cores (``rest``: its arguments after
    ``start``). As in :func:`local_steps_parallel`, every node's buffer must hold its batch,
    and the gradients are the same bits for any number of threads."""
    total = nodes.shape[0]
    chunks = (total + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    for chunk in prange(chunks):
        lo = chunk * PARALLEL_CHUNK
        hi = min(total, lo + PARALLEL_CHUNK)
        gradients(W[lo:hi], G[lo:hi], nodes[lo:hi], 0, *rest)


@jit(nogil=True)
def pair_average(models: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Set both ``models[first[r]]`` and ``models[second[r]]`` to ``(x_i + x_j) · 0.5``.

    Full-precision pair averaging of a wave (the pairs are node-disjoint).
    """
    d = models.shape[1]
    for r in range(first.shape[0]):
        xi = models[first[r]]
        xj = models[second[r]]
        for k in range(d):
            v = (xi[k] + xj[k]) * 0.5
            xi[k] = v
            xj[k] = v
