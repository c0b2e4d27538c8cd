"""One conformance suite run over every gossip algorithm in the registry.

Determinism, stop rules honoured, and the mean of the node models preserved wherever the
algorithm preserves it (push-sum: the de-biased mean, counting messages in flight).
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.algorithms import ALGORITHMS, REGISTRY
from gossipsim.experiment.runner import prepare, simulate
from tests.conftest import make_config

GOSSIP = sorted(k for k in ALGORITHMS if k != "gradient_coding")
# Every algorithm with each variant the registry declares for it.
NAMED = [
    (kind, name, extra)
    for kind in GOSSIP
    for name, extra in [
        ("default", {}),
        *sorted(REGISTRY[kind].variants.items()),
        # Every optimizer variant (schedules, momentum).
        *REGISTRY[kind].optimizer_variants.items(),
    ]
]
VARIANTS = [(kind, extra) for kind, _, extra in NAMED]
IDS = [kind if name == "default" else f"{kind}-{name}" for kind, name, _ in NAMED]


def config_for(kind: str, extra: dict, **overrides):
    algorithm = {"kind": kind, "lr": 0.05, **extra}
    return make_config(**{"algorithm": algorithm, **overrides})


def initial_models(prepared, n):
    return np.stack(
        [
            prepared.problem.objective.init_params(prepared.streams.generator("init", i), 1.0)
            for i in range(n)
        ]
    )


@pytest.mark.parametrize(("kind", "extra"), VARIANTS, ids=IDS)
def test_deterministic(kind, extra):
    first, _ = simulate(prepare(config_for(kind, extra)))
    second, _ = simulate(prepare(config_for(kind, extra)))
    assert first.rows == second.rows
    assert first.rows[-1]["loss"] < first.rows[0]["loss"]


@pytest.mark.parametrize(("kind", "extra"), VARIANTS, ids=IDS)
def test_stop_rules_honoured(kind, extra):
    n = 12
    outcome, sim = simulate(prepare(config_for(kind, extra, stop={"time": 9.5})))
    assert outcome.stop_reason == "time" and outcome.end_time == 9.5
    assert outcome.rows[-1]["time"] == 9.5 and outcome.rows[0]["time"] == 0.0

    outcome, sim = simulate(prepare(config_for(kind, extra, stop={"interactions": 100})))
    assert outcome.stop_reason == "interactions"
    # Synchronous rounds count n exchanges at once: stop at the first round reaching 100.
    assert 100 <= sim.interactions < 100 + n

    outcome, sim = simulate(prepare(config_for(kind, extra, stop={"epochs": 1.0})))
    assert outcome.stop_reason == "epochs"
    assert 1.0 <= sim.epochs
    assert outcome.rows[-1]["epochs"] == sim.epochs


@pytest.mark.parametrize(("kind", "extra"), VARIANTS, ids=IDS)
def test_mean_preserved_at_lr0(kind, extra):
    config = config_for(
        kind,
        {**extra, "lr": 0.0},
        **{"init.identical": False, "stop": {"interactions": 600}},
    )
    prepared = prepare(config)
    outcome, sim = simulate(prepared)
    n = config.topology.n
    start = initial_models(prepared, n).mean(axis=0)
    executor = sim.executor
    if kind == "sgp":
        numerator, weight = executor.push_sum_totals()
        assert weight == pytest.approx(n, abs=1e-12)
        conserved = numerator / weight
    elif extra.get("nonblocking"):
        conserved = (sim.models.sum(axis=0) + executor.pending_deltas()) / n
    else:
        conserved = sim.models.mean(axis=0)
    np.testing.assert_allclose(conserved, start, rtol=0, atol=1e-12)
    assert outcome.rows[-1]["consensus"] < 0.2 * outcome.rows[0]["consensus"]


def test_synchronous_methods_pay_for_stragglers():
    """With a 10× straggler, all-reduce rounds slow down; SwarmSGD's interaction rate barely."""

    def rate(kind, fraction):
        config = config_for(
            kind,
            {},
            compute={
                "kind": "constant",
                "mean": 1.0,
                "stragglers": {"fraction": fraction, "slowdown": 10.0},
            },
            stop={"time": 60.0},
        )
        outcome, sim = simulate(prepare(config))
        return sim.local_steps / 60.0

    assert rate("allreduce", 0.1) < 0.2 * rate("allreduce", 0.0)
    assert rate("swarmsgd", 0.1) > 0.6 * rate("swarmsgd", 0.0)
