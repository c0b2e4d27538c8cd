"""Learning-rate schedules: their math, once, in a form the compiled kernels can call.

A schedule is a small float64 array of parameters (:func:`schedule_params`) and
:func:`lr_at` maps it and a clock value ``t`` (a node's local steps, rounds or epochs so
far; see :class:`gossipsim.engine.batched.BatchedExecutor`) to the learning rate of the
step taken at ``t``. :func:`lr_at` is compiled with numba, so the local-steps kernel calls
it per step; Python code (the numpy paths, gradient coding's parameter server) calls the
same function, and :func:`lr_many` evaluates it for a vector of clocks.

The kinds (``value`` is the base rate η):

* ``constant``: η;
* ``step``: η · factor^⌊t / every⌋ (``factor: 0`` stops learning after the first drop);
* ``cosine``: final + (η − final)·(1 + cos(π·t/total))/2 for t < total, then ``final``;
* ``inverse_time``: η / (1 + decay·t).

Warm-up multiplies the schedule's value by t / warmup while t < warmup: a linear ramp
from 0, so the very first step of a run with warm-up moves nothing (the ramp of common
deep-learning libraries); from t = warmup on the schedule applies unchanged. ``scale``
multiplies the whole result (all-reduce's linear scaling by the number of workers, so a
warm-up ramps from 0 to n·η).

A constant rate without warm-up evaluates to ``value · 1.0``, the value itself: the
executors then give exactly the numbers of a plain float learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gossipsim.engine.jit import jit

CONSTANT, STEP, COSINE, INVERSE_TIME = 0, 1, 2, 3
KINDS = {"constant": CONSTANT, "step": STEP, "cosine": COSINE, "inverse_time": INVERSE_TIME}
# Positions in the parameter array.
KIND, VALUE, A, B, WARMUP, SCALE = range(6)
SIZE = 6


@dataclass(frozen=True)
class Optimizer:
    """How nodes step: the learning rate (a number or a schedule section) and momentum.

    ``scale`` multiplies the rate (all-reduce's ``lr_scaling: linear``); ``averaged``:
    averaging operations average the momentum buffers as they average the models;
    ``rounds``: the schedule's clock counts synchronous rounds instead of the node's own
    steps; ``epochs``: the clock is converted to epochs (× batch size / shard size).
    """

    lr: Any = 0.05
    scale: float = 1.0
    momentum: float = 0.0
    nesterov: bool = False
    averaged: bool = False
    rounds: bool = False

    @property
    def epochs(self) -> bool:
        return uses_epochs(self.lr)

    @property
    def plain(self) -> bool:
        """A constant rate without warm-up, scaling or momentum (SGD as it always was)."""
        return self.momentum == 0.0 and is_constant(schedule_params(self.lr, self.scale))


def schedule_params(lr: Any, scale: float = 1.0) -> np.ndarray:
    """The parameter array of ``lr``: a number (constant) or a schedule config section.

    A section has ``kind``, ``value``, ``warmup`` and its kind's own fields (``factor`` and
    ``every``; ``final`` and ``total``; ``decay``). ``A`` and ``B`` hold those two.
    """
    params = np.zeros(SIZE, dtype=np.float64)
    params[SCALE] = scale
    if isinstance(lr, int | float):
        params[KIND] = CONSTANT
        params[VALUE] = float(lr)
        return params
    kind = KINDS[lr.kind]
    params[KIND] = kind
    params[VALUE] = lr.value
    params[WARMUP] = lr.warmup
    if kind == STEP:
        params[A], params[B] = lr.factor, lr.every
    elif kind == COSINE:
        params[A], params[B] = lr.final, lr.total
    elif kind == INVERSE_TIME:
        params[A] = lr.decay
    return params


def is_constant(params: np.ndarray) -> bool:
    """Whether ``params`` is a constant rate with no warm-up and no scaling."""
    return bool(params[KIND] == CONSTANT and params[WARMUP] == 0 and params[SCALE] == 1.0)


def uses_epochs(lr: Any) -> bool:
    """Whether a config's ``lr`` counts its clock in epochs (a number never does)."""
    return getattr(lr, "unit", "steps") == "epochs"


@jit(nogil=True)
def lr_at(params: np.ndarray, t: float) -> float:
    """The learning rate of the step taken at clock ``t`` (see the module docstring)."""
    kind = params[0]
    value = params[1]
    if kind == 1.0:  # step
        value = value * params[2] ** math.floor(t / params[3])
    elif kind == 2.0:  # cosine
        final = params[2]
        if t < params[3]:
            value = final + (value - final) * 0.5 * (1.0 + math.cos(math.pi * t / params[3]))
        else:
            value = final
    elif kind == 3.0:  # inverse_time
        value = value / (1.0 + params[2] * t)
    warmup = params[4]
    if t < warmup:
        value = value * (t / warmup)
    return value * params[5]


@jit(nogil=True)
def lr_many(params: np.ndarray, t: np.ndarray) -> np.ndarray:
    """:func:`lr_at` of every clock value in ``t``."""
    out = np.empty(t.shape[0])
    for r in range(t.shape[0]):
        out[r] = lr_at(params, t[r])
    return out
