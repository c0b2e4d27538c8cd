"""Compiled evaluation of the recorded metrics for the linear objectives, on both cores.

Every recording point evaluates the full training objective at the mean model and the
held-out accuracy: for a linear model that is one pass over the data set, which the numpy
path makes several times (logits, the head's loss, the mean, the predictions). These
kernels make it once per split, fused, in parallel over fixed blocks of rows: each block
is summed in order and the block sums are then added in order, so the value does not
depend on how many threads ran it (``NUMBA_NUM_THREADS``) — it differs from the numpy
path only by rounding (another summation order).

The parameter layout is the objectives' own: weights ``(f, m)`` row-major, then the bias.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from gossipsim.engine.jit import jit
from gossipsim.engine.kernels import LOGISTIC, SOFTMAX, SQUARED, _dot, linear_head
from gossipsim.objectives.base import Objective

ROWS_PER_BLOCK = 4096
# Data sets of at least this many values (rows × features) are evaluated on all cores.
PARALLEL_FROM = 1 << 22


@jit(nogil=True)
def _block_sums(w, features, targets, head, m, want_correct, block):
    """(Σ loss, Σ correct predictions) over the rows of one fixed block, in row order."""
    n, f = features.shape
    bias = f * m
    z = np.empty(m)
    total = 0.0
    right = 0.0
    for row in range(block * ROWS_PER_BLOCK, min(n, (block + 1) * ROWS_PER_BLOCK)):
        if m == 1:
            z[0] = _dot(features, row, w) + w[bias]
        else:
            for c in range(m):
                z[c] = w[bias + c]
            for k in range(f):
                x = features[row, k]
                for c in range(m):
                    z[c] += x * w[k * m + c]
        t = targets[row]
        if head == SQUARED:
            r = z[0] - t
            total += 0.5 * r * r
        elif head == LOGISTIC:
            # −[t log σ(z) + (1 − t) log σ(−z)], stably.
            a = z[0]
            total += max(a, 0.0) - t * a + np.log1p(np.exp(-abs(a)))
            if want_correct:
                right += 1.0 if (a > 0.0) == (t == 1.0) else 0.0
        else:
            top = z[0]
            best = 0
            for c in range(1, m):
                if z[c] > top:
                    top = z[c]
                    best = c
            s = 0.0
            for c in range(m):
                s += np.exp(z[c] - top)
            total += top + np.log(s) - z[int(t)]
            if want_correct:
                right += 1.0 if best == int(t) else 0.0
    return total, right


@jit(nogil=True, parallel=True)
def _sums_parallel(w, features, targets, head, m, want_correct):
    """Every block on the cores; the block sums are then added in order."""
    blocks = (features.shape[0] + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    loss = np.zeros(blocks)
    correct = np.zeros(blocks)
    for block in prange(blocks):
        loss[block], correct[block] = _block_sums(
            w, features, targets, head, m, want_correct, block
        )
    loss_sum = 0.0
    correct_sum = 0.0
    for block in range(blocks):
        loss_sum += loss[block]
        correct_sum += correct[block]
    return loss_sum, correct_sum


@jit(nogil=True)
def _sums_serial(w, features, targets, head, m, want_correct):
    """The same sums on one core (small data sets: starting threads would cost more)."""
    blocks = (features.shape[0] + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    loss_sum = 0.0
    correct_sum = 0.0
    for block in range(blocks):
        loss, correct = _block_sums(w, features, targets, head, m, want_correct, block)
        loss_sum += loss
        correct_sum += correct
    return loss_sum, correct_sum


def _sums(w, features, targets, head, m, want_correct):
    """(Σ loss, Σ correct): the same bits whichever driver and however many threads."""
    if features.shape[0] * features.shape[1] >= PARALLEL_FROM:
        return _sums_parallel(w, features, targets, head, m, want_correct)
    return _sums_serial(w, features, targets, head, m, want_correct)


class LinearMetrics:
    """Training loss and test accuracy of a linear objective, evaluated by :func:`_sums`."""

    def __init__(self, objective: Objective, head: int, X_train, y_train, X_test, y_test) -> None:
        self.head = head
        self.m = int(objective.net.sizes[-1])
        self.l2 = float(objective.l2)
        targets = objective.head.targets
        self.train = (np.ascontiguousarray(X_train, dtype=np.float64),
                      np.ascontiguousarray(targets(y_train), dtype=np.float64))  # fmt: skip
        self.test = (np.ascontiguousarray(X_test, dtype=np.float64),
                     np.ascontiguousarray(np.asarray(y_test), dtype=np.float64))  # fmt: skip

    @classmethod
    def of(cls, objective: Objective, dataset) -> LinearMetrics | None:
        head = linear_head(objective)
        if head is None or dataset.X_train.shape[0] == 0:
            return None
        return cls(objective, head, dataset.X_train, dataset.y_train, dataset.X_test,
                   dataset.y_test)  # fmt: skip

    def training_loss(self, w: np.ndarray) -> float:
        features, targets = self.train
        w = np.ascontiguousarray(w, dtype=np.float64)
        total, _ = _sums(w, features, targets, self.head, self.m, False)
        return float(total / features.shape[0] + 0.5 * self.l2 * float(w @ w))

    def test_accuracy(self, w: np.ndarray) -> float:
        features, labels = self.test
        if self.head == SQUARED or features.shape[0] == 0:
            return float("nan")
        w = np.ascontiguousarray(w, dtype=np.float64)
        _, correct = _sums(w, features, labels, self.head, self.m, True)
        return float(correct / features.shape[0])


__all__ = ["LinearMetrics", "SOFTMAX"]
