"""A finished run frees its simulation and data at once, so sweeps in one process stay small."""

from __future__ import annotations

import weakref

import pytest

import gossipsim.experiment.runner as runner
from tests.conftest import make_config


@pytest.mark.parametrize("executor", ["sequential", "batched"])
def test_execute_frees_the_simulation(monkeypatch, executor):
    alive: list[weakref.ref] = []
    simulate = runner.simulate

    def watched(prepared, progress=None):
        outcome, sim = simulate(prepared, progress)
        alive.append(weakref.ref(sim))
        alive.append(weakref.ref(sim.problem))
        return outcome, sim

    monkeypatch.setattr(runner, "simulate", watched)
    config = make_config(**{"engine": {"executor": executor}, "stop": {"interactions": 50}})
    outcome, summary = runner.execute(config)
    assert summary["status"] == "complete"
    assert len(alive) == 2
    assert all(ref() is None for ref in alive)  # freed before execute returned
