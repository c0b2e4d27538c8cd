"""Pieces shared by the gossip algorithms: neighbour choice, synchronous round timing."""

from __future__ import annotations

import numpy as np

from gossipsim.config import FixedLocalSteps, GeometricLocalSteps
from gossipsim.engine.simulation import Simulation


def draw_local_steps(
    local_steps: FixedLocalSteps | GeometricLocalSteps, rng: np.random.Generator
) -> int:
    """H for one interaction or round: the fixed value, or a geometric draw on {1, 2, ...}."""
    if isinstance(local_steps, GeometricLocalSteps):
        return int(rng.geometric(1.0 / local_steps.mean))
    return local_steps.value


def random_neighbour(sim: Simulation, node: int, rng: np.random.Generator) -> int:
    """A uniformly random neighbour of ``node`` in the topology."""
    neighbours = sim.neighbours[node]
    return int(neighbours[rng.integers(len(neighbours))])


class SynchronousClock:
    """Per-node compute times of a synchronous round, drawn from each node's timing stream.

    A round lasts as long as its slowest node; the others idle for the difference, which
    is added to ``sim.idle_time``.
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.timing = sim.streams.generators("timing", sim.n)

    def compute_phase(self, steps: list[int] | None = None) -> float:
        """Duration of a round's compute phase (node i does ``steps[i]`` steps, default 1)."""
        sim = self.sim
        now = sim.env.now
        durations = np.array(
            [
                sim.compute.duration(i, 1 if steps is None else steps[i], now, self.timing[i])
                for i in range(sim.n)
            ]
        )
        slowest = float(durations.max())
        sim.idle_time += float((slowest - durations).sum())
        return slowest
