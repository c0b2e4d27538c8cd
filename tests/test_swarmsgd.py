"""SwarmSGD on the engine: the facts the simulator is held to (docs/architecture.md)."""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.engine.batched import SequentialExecutor
from gossipsim.engine.executor import PairAverage
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.objectives import optimum_least_squares
from gossipsim.system.metrics import gamma, mean_model
from gossipsim.system.quantize import make_quantizer
from gossipsim.system.rng import Streams
from tests.conftest import make_config

FULL_PRECISION = {"kind": "none"}


def test_blocking_lr0_preserves_mean_and_consensus_falls():
    config = make_config(
        **{
            "algorithm": {"kind": "swarmsgd", "lr": 0.0, "quantizer": FULL_PRECISION},
            "init.identical": False,
            "topology": {"kind": "random_regular", "n": 32, "degree": 4},
            "stop": {"interactions": 10_000},
            "record.every": 50.0,
        }
    )
    prepared = prepare(config)
    outcome, sim = simulate(prepared)
    assert outcome.stop_reason == "interactions"
    assert sim.interactions == 10_000
    start = sim.executor  # the executor holds the live model matrix
    initial = np.stack(
        [
            prepared.problem.objective.init_params(prepared.streams.generator("init", i), 1.0)
            for i in range(32)
        ]
    )
    np.testing.assert_allclose(mean_model(start.models), mean_model(initial), rtol=0, atol=1e-12)
    consensus = [row["consensus"] for row in outcome.rows]
    assert consensus[-1] < 1e-3 * consensus[0]
    # Pairwise averages never raise Γ (up to float round-off once it is ~0).
    noise = 1e-24 * consensus[0]
    assert all(b <= a * (1 + 1e-12) + noise for a, b in zip(consensus, consensus[1:], strict=False))


def test_nonblocking_lr0_preserves_mean_with_pending_deltas():
    config = make_config(
        **{
            "algorithm": {"kind": "swarmsgd", "lr": 0.0, "nonblocking": True},
            "init.identical": False,
            "stop": {"interactions": 3_000},
        }
    )
    prepared = prepare(config)
    initial_mean = None

    outcome, sim = simulate(prepared)
    initial = np.stack(
        [
            prepared.problem.objective.init_params(prepared.streams.generator("init", i), 1.0)
            for i in range(config.topology.n)
        ]
    )
    initial_mean = initial.mean(axis=0)
    n = config.topology.n
    conserved = (sim.models.sum(axis=0) + sim.executor.pending_deltas()) / n
    np.testing.assert_allclose(conserved, initial_mean, rtol=0, atol=1e-12)
    assert outcome.rows[-1]["consensus"] < 0.05 * outcome.rows[0]["consensus"]


def test_single_average_lowers_gamma_by_half_squared_distance(small_config):
    prepared = prepare(small_config)
    rng = np.random.default_rng(0)
    models = rng.normal(size=(12, prepared.problem.objective.dim))
    executor = SequentialExecutor(models, prepared.problem, 0.0, make_quantizer("none"), Streams(1))
    for i, j in [(0, 5), (3, 4), (11, 0)]:
        before = gamma(models)
        distance = float(np.sum((models[i] - models[j]) ** 2))
        executor.submit(PairAverage(i, j))
        assert gamma(models) == pytest.approx(before - distance / 2, rel=1e-12, abs=1e-12)


def test_complete_graph_contraction_matches_theory():
    """On K_n each random-edge average contracts E[Γ] by exactly 1 − 1/(n−1)."""
    n = 16
    ratios = []
    for seed in range(6):
        config = make_config(
            **{
                "seed": seed,
                "algorithm": {"kind": "swarmsgd", "lr": 0.0},
                "init.identical": False,
                "topology": {"kind": "complete", "n": n},
                "stop": {"interactions": 400},
                # The watch patches the reference executor: every average, one at a time.
                "engine": {"executor": "sequential"},
            }
        )
        prepared = prepare(config)
        outcome, sim = _simulate_watching_gamma(prepared, ratios)
        assert outcome.stop_reason == "interactions"
    ratios = np.asarray(ratios)
    expected = 1 - 1 / (n - 1)
    standard_error = ratios.std(ddof=1) / np.sqrt(ratios.size)
    assert abs(ratios.mean() - expected) < 4 * standard_error + 1e-3


def _simulate_watching_gamma(prepared, ratios):
    """Simulate, recording Γ after/before for every pairwise average as it is applied."""
    original = SequentialExecutor.submit

    def watching(self, op):
        if isinstance(op, PairAverage):
            before = gamma(self.models)
            original(self, op)
            ratios.append(gamma(self.models) / before)
        else:
            original(self, op)

    SequentialExecutor.submit = watching
    try:
        return simulate(prepared)
    finally:
        SequentialExecutor.submit = original


@pytest.mark.parametrize("partition", [{"kind": "iid"}, {"kind": "dirichlet", "alpha": 0.5}])
def test_least_squares_reaches_optimum(partition):
    config = make_config(
        **{
            "objective": {
                "kind": "least_squares",
                "dataset": {"kind": "synthetic", "n_samples": 2000, "n_features": 8, "noise": 0.5},
                "partition": partition,
                "batch_size": 16,
            },
            "init": {"kind": "normal", "scale": 1.0, "identical": True},
            "topology": {"kind": "random_regular", "n": 16, "degree": 4},
            "algorithm": {"kind": "swarmsgd", "lr": 0.02},
            "stop": {"time": 400.0},
            "record.every": 20.0,
        }
    )
    prepared = prepare(config)
    outcome, _ = simulate(prepared)
    data = prepared.problem.dataset
    w_star = optimum_least_squares(data.X_train, data.y_train, 0.0)
    best = prepared.problem.training_loss(w_star)
    start, final = outcome.rows[0]["loss"], outcome.rows[-1]["loss"]
    assert (final - best) / (start - best) < 0.02


def test_same_seed_same_metrics_and_different_seed_differs():
    def run(seed):
        outcome, _ = simulate(prepare(make_config(seed=seed)))
        return outcome.rows

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_geometric_local_steps_and_quantizers_run():
    for quantizer in ({"kind": "lattice", "bits": 8}, {"kind": "stochastic", "bits": 8}):
        config = make_config(
            **{
                "algorithm": {
                    "kind": "swarmsgd",
                    "lr": 0.05,
                    "local_steps": {"kind": "geometric", "mean": 3},
                    "quantizer": quantizer,
                },
                "init.identical": True,
            }
        )
        outcome, sim = simulate(prepare(config))
        last = outcome.rows[-1]
        assert outcome.status == "complete"
        assert last["loss"] < outcome.rows[0]["loss"]
        # H has mean 3: local steps per interaction close to 3.
        assert 2.0 < last["local_steps"] / last["interactions"] < 4.5
        assert last["bits"] < 32 * sim.models.shape[1] * last["messages"]


def test_blocking_waits_for_busy_partner():
    config = make_config(**{"stop": {"time": 50.0}})
    outcome, _ = simulate(prepare(config))
    assert outcome.rows[-1]["idle_time"] > 0
    config = make_config(**{"stop": {"time": 50.0}, "algorithm.nonblocking": True})
    outcome, _ = simulate(prepare(config))
    assert outcome.rows[-1]["idle_time"] == 0


def test_stop_rules():
    outcome, sim = simulate(prepare(make_config(stop={"epochs": 2.0})))
    assert outcome.stop_reason == "epochs" and sim.epochs >= 2.0
    outcome, _ = simulate(prepare(make_config(stop={"time": 7.0}, record={"every": 2.0})))
    assert [r["time"] for r in outcome.rows] == [0.0, 2.0, 4.0, 6.0, 7.0]
    start_loss = outcome.rows[0]["loss"]
    target = 0.9 * start_loss
    outcome, _ = simulate(prepare(make_config(stop={"time": 1000.0, "target_loss": target})))
    assert outcome.stop_reason == "target_loss"
    assert outcome.rows[-1]["loss"] <= target < outcome.rows[-2]["loss"]


def test_diverging_run_is_marked():
    config = make_config(
        **{
            "objective.kind": "least_squares",
            "algorithm.lr": 50.0,
            "stop": {"time": 200.0},
        }
    )
    outcome, _ = simulate(prepare(config))
    assert outcome.status == "diverged"
    assert not np.isfinite(outcome.rows[-1]["loss"])
    assert outcome.rows[-1]["time"] < 200.0
