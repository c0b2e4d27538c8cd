"""Helpers of the oracle generators, copied so that the oracle stays independent of the engine."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy

from gossipsim.experiment.sections import FixedLocalSteps, GeometricLocalSteps


def draw_local_steps(
    local_steps: FixedLocalSteps | GeometricLocalSteps, rng: np.random.Generator
) -> int:
    """H for one interaction: the fixed value, or a geometric draw on {1, 2, ...}."""
    if isinstance(local_steps, GeometricLocalSteps):
        return int(rng.geometric(1.0 / local_steps.mean))
    return local_steps.value


def random_neighbour(sim, node: int, rng: np.random.Generator) -> int:
    """A uniformly random neighbour of ``node`` in the topology."""
    neighbours = sim.neighbours[node]
    return int(neighbours[rng.integers(len(neighbours))])


def pairwise_exchange(
    sim, i: int, j: int, message_time: float, last_attempt: bool = True
) -> Generator[simpy.Event, object, float | None]:
    """Wait out one two-message exchange between ``i`` and ``j``; return its duration, or
    None (after the fault timeout) when it cannot complete."""
    faults = sim.faults
    duration = message_time if faults is None else faults.exchange(i, j, message_time)
    if duration is not None:
        yield sim.env.timeout(duration)
        if faults is None or faults.reachable(i, j):
            return duration
    yield sim.env.timeout(faults.timeout)
    faults.note_failed_attempt(last=last_attempt)
    return None
