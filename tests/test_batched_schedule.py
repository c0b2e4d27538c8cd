"""The lean event loop replays SimPy exactly: same operations, same times, same order.

Every synchronous method runs its round generator under SimPy (the reference) and under the
lean loop, with an executor that records each operation and the time it was
submitted. Ties are provoked on purpose: constant compute times make many events share an
instant, zero message time makes lock hand-offs happen at one instant, and the stop rules
end runs mid-instant.
"""

from __future__ import annotations

import pytest

from gossipsim.algorithms import REGISTRY, get_algorithm
from gossipsim.experiment.runner import build_simulation, prepare
from tests.conftest import make_config
from tests.test_programs import TIMING, RecordingExecutor

# Synchronous methods are round generators (no node program): the lean loop runs the same
# generators as SimPy. Asynchronous algorithms are held to their oracle in test_programs.py.
SYNCHRONOUS = sorted(
    kind for kind, e in REGISTRY.items() if e.program is None and e.family != "coding"
)


def schedule_of(config, lean: bool):
    sim = build_simulation(prepare(config), executor_class=RecordingExecutor, lean=lean)
    executor = sim.executor
    algorithm = config.algorithm
    executor.sim = sim
    outcome = sim.run(get_algorithm(algorithm.kind))
    facts = (sim.interactions, sim.local_steps, sim.samples, sim.idle_time, outcome.stop_reason)
    return executor.log, outcome.rows, facts, sim.models


def _check_same(config):
    reference = schedule_of(config, lean=False)
    lean = schedule_of(config, lean=True)
    assert lean[0] == reference[0]  # operations, their times and their order
    assert lean[1] == reference[1]  # recorded rows
    assert lean[2] == reference[2]
    assert (lean[3] == reference[3]).all()
    return lean


@pytest.mark.parametrize("kind", ["dpsgd", "dpsgd-atc", "adpsgd", "sgp", "allreduce", "local_sgd"])
@pytest.mark.parametrize("timing", ["exponential", "constant-ties", "shifted-interactions"])
def test_generator_processes_on_lean_loop_replay_simpy(kind, timing):
    kind, _, variant = kind.partition("-")
    algorithm = {"kind": kind, "lr": 0.05, **REGISTRY[kind].variants.get(variant, {})}
    overrides = {"algorithm": algorithm, **TIMING[timing]}
    _check_same(make_config(**overrides))
