"""Local SGD: every node takes H local steps, then all models are averaged by all-reduce.

A round lasts as long as the slowest node's H steps plus the all-reduce of the models;
H is fixed or drawn per node and round (geometric).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Literal

import simpy
from pydantic import Field

from gossipsim.algorithms.synchronous.allreduce import (
    RingAllReduce,
    account_allreduce,
    average_reachable_groups,
)
from gossipsim.algorithms.synchronous.rounds import SynchronousClock, draw_local_steps
from gossipsim.engine.executor import GlobalAverage
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import (
    AveragingOptimizerSection,
    FixedLocalSteps,
    LocalStepsConfig,
)


class LocalSGDConfig(AveragingOptimizerSection):
    """Local SGD: H local steps, then a global average by all-reduce, repeated."""

    kind: Literal["local_sgd"]
    local_steps: LocalStepsConfig = Field(
        default_factory=lambda: FixedLocalSteps(kind="fixed", value=4)
    )


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, LocalSGDConfig)
    sim.env.process(rounds(sim, sim.config.algorithm))


def rounds(sim: Simulation, config: LocalSGDConfig) -> Generator[simpy.Event, object, None]:
    clock = SynchronousClock(sim)
    ring = RingAllReduce.of(sim)
    local_steps = config.local_steps
    # H fixed: the same for everyone, no draw; geometric: each node's own stream.
    fixed = local_steps.value if isinstance(local_steps, FixedLocalSteps) else None
    steps_rng = None if fixed is not None else sim.streams.generators("local_steps", sim.n)
    while True:
        nodes = yield from clock.members()
        if fixed is not None:
            steps = [fixed] * sim.n
        else:
            assert steps_rng is not None
            steps = [draw_local_steps(local_steps, steps_rng[i]) for i in range(sim.n)]
        nodes = yield from clock.round(ring.time, steps, nodes=nodes, messages=ring.messages)
        members = nodes.tolist()
        sim.submit_local_steps(members, [steps[i] for i in members])
        if sim.faults is None:
            sim.submit(GlobalAverage())
            account_allreduce(sim, ring, len(nodes))
        else:
            average_reachable_groups(sim, ring, nodes)
        sim.count_iteration()
