"""Gradient coding on the engine: real training, identical timing draws, metrics, configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gossipsim.algorithms.coding.protocol import METRICS, GradientCoding
from gossipsim.cli import main
from gossipsim.experiment.config import ConfigError, load_config
from gossipsim.experiment.runner import prepare, simulate
from tests.conftest import make_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ZERO_NETWORK = {"latency": 0.0, "bandwidth": math.inf}


def gc_config(scheme: str = "partial", **overrides):
    algorithm = {"kind": "gradient_coding", "scheme": scheme, "workers": 6, "load": 3, "lr": 0.5}
    algorithm.update(overrides.pop("algorithm", {}))
    settings = {
        "algorithm": algorithm,
        "init.identical": True,
        "objective.dataset.n_samples": 300,
        "objective.l2": 1e-3,
        "compute": {
            "kind": "shifted_exponential",
            "mean": 1.0,
            "shift": 0.3,
            "heterogeneity": {"kind": "lognormal", "sigma": 0.3},
            "stragglers": {"fraction": 0.2, "slowdown": 4.0},
        },
        "stop": {"iterations": 12},
        "record.every": 1.0,
    }
    settings.update(overrides)
    return make_config(**settings)


def run(config):
    outcome, sim = simulate(prepare(config))
    return outcome, sim, sim.gradient_coding


def test_rows_carry_the_gradient_coding_columns():
    outcome, sim, gc = run(gc_config())
    assert outcome.stop_reason == "iterations"
    assert sim.iterations == 12 and gc.config.scheme == "partial"
    for row in outcome.rows:
        assert set(METRICS) <= set(row)
    first, last = outcome.rows[0], outcome.rows[-1]
    assert first["time"] == 0.0 and first["iteration"] == 0 and math.isnan(first["decode_error"])
    assert last["iteration"] == 12 and last["decode_error"] < 1e-10
    assert last["loss"] < first["loss"]
    assert last["consensus"] < 1e-20  # every row of the model matrix is the PS model
    assert last["coded_messages"] == last["interactions"] > 0
    assert last["report_messages"] >= last["chunks_computed"] - last["chunks_wasted"]
    assert last["iteration_time"] == pytest.approx(last["time"] / 12)
    assert 1.0 <= last["condition_number"] <= math.sqrt(3) + 1e-9


def test_counters_of_uncoded_by_hand():
    config = gc_config("uncoded", stop={"iterations": 3})
    outcome, sim, gc = run(config)
    n, d = 6, gc.objective.dim
    last = outcome.rows[-1]
    # per iteration: a broadcast of the model to n workers, n gradients (+ header) back
    assert last["messages"] == 3 * 2 * n
    assert last["bits"] == 3 * n * 32 * d + 3 * n * (32 * d + 64)
    assert last["coded_messages"] == 3 * n and last["chunks_wasted"] == 0
    assert last["chunks_computed"] == 3 * n
    assert last["epochs"] == pytest.approx(3.0)


def _gradient_descent(config, iterations: int) -> np.ndarray:
    prepared = prepare(config)
    objective = prepared.problem.objective
    data = prepared.problem.dataset
    w = prepared.problem.objective.init_params(prepared.streams.generator("init"), 1.0)
    for _ in range(iterations):
        w = w - config.algorithm.lr * objective.grad(w, data.X_train, data.y_train)
    return w


@pytest.mark.parametrize("objective", ["logistic", "least_squares"])
def test_exact_protocol_follows_uncoded_full_gradient_descent(objective):
    overrides = {"objective.kind": objective, "stop": {"iterations": 15}}
    if objective == "least_squares":
        overrides["algorithm"] = {"lr": 0.1}
    _, _, partial = run(gc_config("partial", **overrides))
    _, _, uncoded = run(gc_config("uncoded", **overrides))
    _, _, cr = run(gc_config("cr", **overrides))
    reference = _gradient_descent(gc_config("uncoded", **overrides), 15)
    scale = np.linalg.norm(reference)
    for other in (uncoded, cr, partial):
        assert np.linalg.norm(other.w - reference) <= 1e-10 * scale
    assert max(partial.decode_errors) < 1e-10 and max(cr.decode_errors) < 1e-8


def _record_draws(monkeypatch) -> dict[str, list[np.ndarray]]:
    draws: dict[str, list[np.ndarray]] = {}
    original = GradientCoding.draw_durations

    def spy(self, start):
        D = original(self, start)
        draws.setdefault(self.config.scheme, []).append(D.copy())
        return D

    monkeypatch.setattr(GradientCoding, "draw_durations", spy)
    return draws


def test_schemes_see_identical_timing_draws_and_the_protocol_is_fastest(monkeypatch):
    draws = _record_draws(monkeypatch)
    times = {}
    for scheme in ("uncoded", "ignore_stragglers", "fr", "cr", "partial"):
        outcome, _, gc = run(gc_config(scheme, network=ZERO_NETWORK))
        times[scheme] = np.array(gc.iteration_times)
    reference = draws["partial"]
    assert len(reference) >= 12
    for scheme, seen in draws.items():
        for D, D_ref in zip(seen, reference, strict=False):
            np.testing.assert_array_equal(D, D_ref, err_msg=scheme)
    # zero latency: the protocol is never later than CR (nor FR), iteration by iteration
    assert (times["partial"] <= times["cr"] + 1e-12).all()
    assert times["partial"].mean() < times["cr"].mean()


def test_approximate_recovery_runs_with_a_deadline_and_counts_waste():
    config = gc_config(
        "partial",
        algorithm={"recovery": "approximate", "deadline": 1.2},
        network={"latency": 0.05, "bandwidth": 1e6},
        stop={"iterations": 20},
    )
    outcome, _, gc = run(config)
    last = outcome.rows[-1]
    assert all(t <= 1.2 + 0.05 + 0.1 + 1e-9 for t in gc.snapshot_times)
    assert last["decode_error_median"] >= 0 and np.isfinite(last["loss"])
    assert last["chunks_wasted"] > 0  # work finished after the snapshot is thrown away
    exact = run(gc_config("partial", network={"latency": 0.05, "bandwidth": 1e6}))[0].rows[-1]
    assert last["iteration_time"] < exact["iteration_time"]


def test_minibatch_chunks_and_determinism():
    config = gc_config("partial", algorithm={"batch": 8, "ordering": "random"})
    first, _, gc = run(config)
    second, _, _ = run(config)
    assert first.rows == second.rows
    assert 0 < np.median(gc.decode_errors) < 10
    assert first.rows[-1]["epochs"] == pytest.approx(first.rows[-1]["chunks_computed"] * 8 / 240)


def test_partial_with_more_chunks_than_workers_and_fractional_assignment():
    for overrides in ({"chunks": 12}, {"assignment": "fractional", "ordering": "optimized"}):
        outcome, _, gc = run(gc_config("partial", algorithm=overrides))
        assert gc.m == overrides.get("chunks", 6)
        assert max(gc.decode_errors) < 1e-10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm.scheme=fr"], r"bad.yaml:\d+: algorithm.load: FR needs workers \(20\)"),
        (["algorithm.scheme=cr", "algorithm.chunks=12"], "algorithm.chunks: scheme cr needs"),
        (["algorithm.chunks=100", "algorithm.load=5", "objective.dataset.n_samples=100"],
         "algorithm.chunks: 100 chunks but only 80 training samples"),
        (["algorithm.chunks=100"], "algorithm.load: with a cyclic assignment of 100 chunks"),
    ],
)  # fmt: skip
def test_config_errors_are_located(tmp_path, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text((CONFIGS / "gc_partial.yaml").read_text())
    with pytest.raises(ConfigError, match=message):
        prepare(load_config(path, overrides))


@pytest.mark.parametrize("name", ["gc_partial.yaml", "gc_compare.yaml"])
def test_shipped_configs_run(tmp_path, name, capsys):
    code = main(
        ["run", str(CONFIGS / name), "--out", str(tmp_path), "--quiet"]
        + ["--set", "stop.iterations=4"]
    )
    assert code == 0
    assert "complete (iterations)" in capsys.readouterr().out


def test_compare_config_sweeps_every_scheme():
    config = load_config(CONFIGS / "gc_compare.yaml")
    schemes = config.sweep["grid"]["algorithm.scheme"]
    assert schemes == ["uncoded", "ignore_stragglers", "fr", "cr", "original", "partial"]
    for scheme in schemes:
        prepare(load_config(CONFIGS / "gc_compare.yaml", [f"algorithm.scheme={scheme}"]))


@pytest.mark.parametrize("scheme", ["cr", "partial", "ignore_stragglers"])
def test_transient_stragglers_draw_only_the_slots_workers_start(scheme, monkeypatch):
    """Transient slow periods are keyed to time: slots never started are not drawn, so the
    timing model's calls stay in time order across iterations."""
    from gossipsim.algorithms.coding.schedule import Schedule

    seen = []
    original = Schedule.reached

    def spy(self, D, start):
        result = original(self, D, start)
        seen.append((result, D, start, self.stop_time))
        return result

    monkeypatch.setattr(Schedule, "reached", spy)
    config = gc_config(
        scheme,
        compute={
            "kind": "exponential",
            "mean": 1.0,
            "stragglers": {"fraction": 0.3, "slowdown": 5.0, "mode": "transient", "period": 3.0},
        },
        algorithm={"report_every": 0.2},
        stop={"iterations": 25},
    )
    outcome, _, gc = run(config)
    assert gc.transient and outcome.stop_reason == "iterations"
    assert len(seen) >= 25
    for reached, D, start, stop in seen:
        assert reached[:, 0].all()  # every worker starts its first chunk
        finish = start + np.cumsum(D, axis=1)
        if scheme != "ignore_stragglers":  # a worker that finished a slot before the stop
            done_early = finish[:, :-1] < stop  # goes on with its next one
            assert reached[:, 1:][done_early].all()
    assert max(gc.decode_errors) < (1.0 if scheme == "ignore_stragglers" else 1e-8)
