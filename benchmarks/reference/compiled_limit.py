"""The compiled limit of ``swarm-1k``: its math as one numba loop, no events at all.

Exactly the math of :mod:`benchmarks.reference.swarm_logistic` (same set-up, same data,
graph, initial model, learning rate, batch and H): per interaction a uniformly random node
takes H SGD steps of logistic regression on minibatches drawn with replacement from its own
shard, then averages its model with a uniformly random neighbour; the loss of the mean model
over the training set is evaluated as many times as the simulation records it (by the same
``Problem.training_loss`` the simulator uses, between stretches of the loop).

It is what a simulator could do at best on one core: no queue, no clock, no log, random
draws from numba's own generator inside the loop, minibatch rows read in place from the
shards' back-to-back feature matrix, and the rows of the next interaction prefetched while
the current one computes (the simulator's kernels do the same). Its time is the yardstick of
``simulate()``: the harness reports the ratio ``limit / simulate`` (target >= 0.8).
"""

from __future__ import annotations

import math
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from benchmarks.reference.swarm_logistic import setup
from gossipsim.experiment.runner import Prepared


@intrinsic
def _prefetch(typingctx, array, position):
    """Hint the CPU to load the cache line of ``array.ravel()[position]`` (never faults)."""
    if not (isinstance(array, types.Array) and isinstance(position, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.bitcast(builder.gep(ary.data, [offset]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        zero, three, one = (ir.Constant(i32, v) for v in (0, 3, 1))
        builder.call(function, [address, zero, three, one])
        return context.get_dummy_value()

    return types.void(array, position), codegen


@njit(cache=True)
def _seed(seed: int) -> None:
    np.random.seed(seed)  # noqa: NPY002 (numba's own generator, seeded inside numba)


@njit(cache=True, nogil=True)
def _plan(n, offsets, sizes, indptr, indices, batch, H, plan, X, y):
    """Draw the next interaction (node, partner, rows of its H steps) into ``plan``; prefetch."""
    i = np.random.randint(0, n)  # noqa: NPY002
    start = indptr[i]
    j = indices[start + np.random.randint(0, indptr[i + 1] - start)]  # noqa: NPY002
    plan[0] = i
    plan[1] = j
    size = sizes[i]
    b = min(batch, size)
    f = X.shape[1]
    for r in range(H * b):
        row = offsets[i] + np.random.randint(0, size)  # noqa: NPY002
        plan[2 + r] = row
        for k in range(0, f, 8):
            _prefetch(X, row * f + k)
        _prefetch(X, row * f + f - 1)
        _prefetch(y, row)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _loop(W, X, y, offsets, sizes, indptr, indices, lr, batch, H, count, plan, g):
    """Run ``count`` interactions on ``W`` in place; ``plan`` holds the next one, drawn."""
    n = W.shape[0]
    f = X.shape[1]
    current = np.empty_like(plan)
    for _ in range(count):
        current[:] = plan
        _plan(n, offsets, sizes, indptr, indices, batch, H, plan, X, y)
        i = current[0]
        j = current[1]
        b = min(batch, sizes[i])
        for h in range(H):
            for k in range(f):
                g[k] = 0.0
            gb = 0.0
            for r in range(b):
                row = current[2 + h * b + r]
                z = W[i, f]
                for k in range(f):
                    z += X[row, k] * W[i, k]
                e = (1.0 / (1.0 + math.exp(-z)) - y[row]) / b
                for k in range(f):
                    g[k] += e * X[row, k]
                gb += e
            for k in range(f):
                W[i, k] -= lr * g[k]
            W[i, f] -= lr * gb
        for k in range(f + 1):
            average = (W[i, k] + W[j, k]) * 0.5
            W[i, k] = average
            W[j, k] = average


def run(prepared: Prepared, interactions: int, evaluations: int, seed: int = 0) -> dict:
    """Run the loop; return wall time (with the evaluations), loop time and final loss."""
    m = setup(prepared, seed)
    problem = prepared.problem
    X = np.ascontiguousarray(problem.features, dtype=np.float64)
    y = np.ascontiguousarray(problem.targets, dtype=np.float64)
    offsets = np.ascontiguousarray(problem.offsets, dtype=np.int64)
    degree = np.array([len(v) for v in m.neighbours], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(degree))).astype(np.int64)
    indices = np.concatenate(m.neighbours).astype(np.int64)
    W = np.ascontiguousarray(m.W)
    g = np.zeros(X.shape[1], dtype=np.float64)
    plan = np.zeros(2 + m.local_steps * m.batch, dtype=np.int64)
    arguments = (X, y, offsets, m.sizes, indptr, indices, m.lr, m.batch, m.local_steps)
    compiled = time.perf_counter()
    _loop(W.copy(), *arguments, 0, plan.copy(), g)  # compile, or load the cache
    compiled = time.perf_counter() - compiled
    _seed(seed + 1)
    every = max(1, interactions // max(1, evaluations))
    loop = 0.0
    loss = float("nan")
    started = time.perf_counter()
    _plan(m.n, offsets, m.sizes, indptr, indices, m.batch, m.local_steps, plan, X, y)
    done = 0
    while done < interactions:
        count = min(every - done % every, interactions - done)
        begun = time.perf_counter()
        _loop(W, *arguments, count, plan, g)
        loop += time.perf_counter() - begun
        done += count
        if done % every == 0:
            loss = m.training_loss(W.mean(axis=0))
    return {
        "wall_time": time.perf_counter() - started,
        "loop_time": loop,
        "compile_time": compiled,
        "loss": loss,
    }
