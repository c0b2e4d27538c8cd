"""A compiled kernel for the PS's chunk gradients with the linear objectives.

Every iteration the PS needs the gradient of every chunk at one model ``w``. For least
squares and logistic regression (a network with no hidden layer, one output, a squared or
logistic head) each sample row contributes ``dout·[x, 1]`` with ``dout`` a function of its
own logit, so one pass over the rows (in chunk order, stored contiguously) gives all the
chunk gradients: the data is read once instead of twice (forward, then backward) by the
batched numpy path. The math is :mod:`gossipsim.objectives`' (``dout = (σ(z) − y)/N_j`` or
``(z − y)/N_j``; no L2 term here); sums may be reassociated (SIMD), so results agree with
``Objective.grad_many`` to rounding, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from gossipsim.engine.jit import jit
from gossipsim.objectives.base import Objective
from gossipsim.objectives.heads import LogisticHead, SquaredHead

SQUARED, LOGISTIC = 0, 1


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
