"""Random draws fetched ahead in blocks, for the fast paths of the event loop.

numpy generators give the same numbers whether a distribution is drawn one value at a time
or many values in one call (checked by ``tests/test_batched_streams.py`` for every
distribution used here), so a node's timing, pairing and local-step draws can be fetched
in blocks and handed out in the order the SimPy process would have drawn them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gossipsim.config import GeometricLocalSteps
from gossipsim.timing import ComputeModel

BLOCK = 256


class Prefetch:
    """Values of ``draw(size)`` handed out one at a time (a block is drawn when needed)."""

    __slots__ = ("_draw", "_values", "_position")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._values: list = []
        self._position = 0

    def take(self):
        position = self._position
        if position == len(self._values):
            self._values = self._draw(BLOCK).tolist()
            position = 0
        self._position = position + 1
        return self._values[position]


class NodeClock:
    """``compute.duration(node, steps, now, rng)`` for one node, with its draws fetched ahead.

    Transient stragglers interleave their on/off draws with the step times, so that model
    is served by :meth:`ComputeModel.duration` itself, one call at a time.
    """

    __slots__ = ("compute", "node", "rng", "factor", "_base", "_fixed", "_direct")

    def __init__(self, compute: ComputeModel, node: int, rng: np.random.Generator) -> None:
        self.compute = compute
        self.node = node
        self.rng = rng
        self.factor = float(compute.factors[node])  # Python float: same IEEE products
        self._direct = compute._transient
        deterministic = compute.kind == "constant" or (
            compute.kind == "lognormal" and compute.sigma == 0
        )
        self._fixed: dict[int, float] | None = {} if deterministic else None
        self._base = None if deterministic else Prefetch(lambda size: compute._draw(rng, size))

    def one_step(self, now: float) -> float:
        """``duration(1, now)``: one step (the common case, kept short)."""
        base = self._base
        if base is None or self._direct:
            return self.duration(1, now)
        position = base._position
        if position == len(base._values):
            return base.take() * self.factor
        base._position = position + 1
        # Same IEEE product as ``float((draw * factor).sum())`` on a one-element array.
        return base._values[position] * self.factor

    def duration(self, steps: int, now: float) -> float:
        if self._direct:
            return self.compute.duration(self.node, steps, now, self.rng)
        if self._fixed is not None:
            known = self._fixed.get(steps)
            if known is None:
                known = self.compute.duration(self.node, steps, now, self.rng)
                self._fixed[steps] = known
            return known
        assert self._base is not None  # not deterministic (``_fixed`` is None)
        if steps == 1:
            # Same IEEE product as ``float((draw * factor).sum())`` on a one-element array.
            return self._base.take() * self.factor
        if steps == 0:
            return 0.0
        draws = np.array([self._base.take() for _ in range(steps)])
        return float((draws * self.factor).sum())


def neighbour_draws(neighbours: np.ndarray, rng: np.random.Generator) -> Prefetch:
    """``int(neighbours[rng.integers(len(neighbours))])``, one call per :meth:`Prefetch.take`."""
    table = np.asarray(neighbours, dtype=np.int64)
    degree = len(table)
    return Prefetch(lambda size: table[rng.integers(degree, size=size)])


def local_step_draws(config, rng: np.random.Generator) -> Callable[[], int]:
    """H per interaction: the fixed value, or geometric draws (as ``draw_local_steps``)."""
    if isinstance(config, GeometricLocalSteps):
        p = 1.0 / config.mean
        return Prefetch(lambda size: rng.geometric(p, size=size)).take
    value = config.value
    return lambda: value
