"""Pieces shared by the gossip algorithms: neighbour choice, synchronous round timing."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy

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
    """Per-node compute times of synchronous rounds, drawn from each node's timing stream.

    A round lasts as long as its slowest node plus the communication phase; the others
    idle for the difference. Idle and communication time are accounted when the round
    has actually elapsed, so a run stopped mid-round never counts time that did not pass.
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.timing = sim.streams.generators("timing", sim.n)

    def round(
        self, communication: float, steps: list[int] | None = None
    ) -> Generator[simpy.Event, object, None]:
        """Wait out one round: node i computes ``steps[i]`` steps (default 1), then all talk."""
        sim = self.sim
        now = sim.env.now
        durations = np.array(
            [
                sim.compute.duration(i, 1 if steps is None else steps[i], now, self.timing[i])
                for i in range(sim.n)
            ]
        )
        slowest = float(durations.max())
        yield sim.env.timeout(slowest + communication)
        sim.idle_time += float((slowest - durations).sum())
        sim.comm_time += sim.n * communication
