"""Tests for gossipsim.system.timing: step times, heterogeneity, stragglers, network."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gossipsim.system.timing import COMPUTE_KINDS, ComputeModel, Network, TimingError


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def samples(model: ComputeModel, node: int, count: int, seed: int = 1) -> np.ndarray:
    g = rng(seed)
    return np.array([model.duration(node, 1, 0.0, g) for _ in range(count)])


@pytest.mark.parametrize(
    ("kind", "kw", "std"),
    [
        ("constant", {}, 0.0),
        ("exponential", {}, 2.0),
        ("shifted_exponential", {"shift": 1.5}, 0.5),
        ("lognormal", {"sigma": 0.5}, 2.0 * math.sqrt(math.exp(0.25) - 1)),
        ("pareto", {"alpha": 4.0}, 2.0 * 0.75 * math.sqrt(4 / (9 * 2))),
    ],
)
def test_distribution_means(kind: str, kw: dict, std: float) -> None:
    count = 200_000
    model = ComputeModel(1, kind, rng(), mean=2.0, **kw)
    # One vectorised call of `count` steps: the total is the sum of `count` draws.
    total = model.duration(0, count, 0.0, rng(3))
    tol = 6 * std / math.sqrt(count) + 1e-9
    assert total / count == pytest.approx(2.0, abs=tol)
    assert model.mean_step_time() == pytest.approx(2.0)


def test_distribution_shapes() -> None:
    x = samples(ComputeModel(1, "shifted_exponential", rng(), mean=2.0, shift=1.5), 0, 2000)
    assert x.min() >= 1.5
    x = samples(ComputeModel(1, "pareto", rng(), mean=2.0, alpha=3.0), 0, 2000)
    assert x.min() >= 2.0 * 2 / 3
    x = samples(ComputeModel(1, "exponential", rng(), mean=2.0), 0, 20_000)
    assert np.std(x) == pytest.approx(2.0, rel=0.05)


def test_lognormal_sigma_zero_is_constant() -> None:
    model = ComputeModel(3, "lognormal", rng(), mean=1.7, sigma=0.0)
    g = rng(9)
    state = g.bit_generator.state
    assert model.duration(1, 5, 0.0, g) == pytest.approx(5 * 1.7)
    assert np.all(samples(model, 2, 10) == 1.7)
    assert g.bit_generator.state == state  # no randomness used


def test_zero_steps() -> None:
    assert ComputeModel(2, "exponential", rng()).duration(0, 0, 5.0, rng()) == 0.0


def test_heterogeneity_lognormal_mean_one() -> None:
    n = 40_000
    model = ComputeModel(n, "constant", rng(), heterogeneity={"kind": "lognormal", "sigma": 0.3})
    sd = math.sqrt(math.exp(0.09) - 1)
    assert model.factors.shape == (n,)
    assert model.factors.mean() == pytest.approx(1.0, abs=6 * sd / math.sqrt(n))
    assert np.std(np.log(model.factors)) == pytest.approx(0.3, rel=0.03)
    assert model.duration(5, 1, 0.0, rng()) == pytest.approx(model.factors[5])
    assert model.mean_step_time() == pytest.approx(model.factors.mean())


def test_heterogeneity_uniform_and_none() -> None:
    model = ComputeModel(
        5000, "constant", rng(), heterogeneity={"kind": "uniform", "low": 0.5, "high": 1.5}
    )
    assert model.factors.min() >= 0.5 and model.factors.max() <= 1.5
    assert model.factors.mean() == pytest.approx(1.0, abs=0.02)
    none = ComputeModel(4, "constant", rng(), heterogeneity={"kind": "none"})
    np.testing.assert_array_equal(none.factors, np.ones(4))


def test_persistent_stragglers() -> None:
    n, fraction, slowdown = 50, 0.14, 5.0
    stragglers = {"fraction": fraction, "slowdown": slowdown, "mode": "persistent"}
    model = ComputeModel(n, "exponential", rng(4), stragglers=stragglers)
    assert len(model.straggler_nodes) == round(fraction * n) == 7
    assert len(set(model.straggler_nodes.tolist())) == 7
    normal = np.setdiff1d(np.arange(n), model.straggler_nodes)
    np.testing.assert_array_equal(model.factors[model.straggler_nodes], slowdown)
    np.testing.assert_array_equal(model.factors[normal], 1.0)
    # Same node rng draws => the straggler's durations are exactly slowdown x longer.
    s, f = int(model.straggler_nodes[0]), int(normal[0])
    for steps in (1, 10):
        assert model.duration(s, steps, 0.0, rng(11)) == pytest.approx(
            slowdown * model.duration(f, steps, 0.0, rng(11)), rel=1e-12
        )
    expected = (1 - 7 / n) + 7 / n * slowdown
    assert model.mean_step_time() == pytest.approx(expected)


def test_straggler_choice_reproducible() -> None:
    spec = {"fraction": 0.3, "slowdown": 2.0}
    a = ComputeModel(30, "constant", rng(8), stragglers=spec).straggler_nodes
    b = ComputeModel(30, "constant", rng(8), stragglers=spec).straggler_nodes
    np.testing.assert_array_equal(a, b)
    assert (
        len(ComputeModel(30, "constant", rng(), stragglers={"fraction": 0.0}).straggler_nodes) == 0
    )


def test_transient_long_run_slow_fraction() -> None:
    # Steps much shorter than the periods, so the long-run fraction of time spent in slow
    # steps approaches the on/off process's slow-time fraction `fraction`.
    fraction, slowdown, mean = 0.2, 4.0, 0.01
    spec = {"fraction": fraction, "slowdown": slowdown, "mode": "transient", "period": 1.0}
    model = ComputeModel(1, "constant", rng(), mean=mean, stragglers=spec)
    assert len(model.straggler_nodes) == 0
    g = rng(21)
    now, slow_time, chunk, calls = 0.0, 0.0, 1000, 400
    for _ in range(calls):
        # Each call draws its steps at once and advances the on/off state through them.
        d = model.duration(0, chunk, now, g)
        slow_steps = round((d - chunk * mean) / (mean * (slowdown - 1)))
        slow_time += slow_steps * mean * slowdown
        now += d
    assert slow_time / now == pytest.approx(fraction, abs=0.03)
    # ETA estimate: long-run time per step is mean / ((1 - f) + f / c).
    assert model.mean_step_time() == pytest.approx(mean / (1 - fraction + fraction / slowdown))
    assert now / (chunk * calls) == pytest.approx(model.mean_step_time(), rel=0.03)


def test_transient_slow_probability_across_nodes() -> None:
    # The on/off process starts (and stays) stationary: P(slow at any time) = fraction.
    n, fraction = 4000, 0.25
    spec = {"fraction": fraction, "slowdown": 3.0, "mode": "transient"}
    model = ComputeModel(n, "constant", rng(), stragglers=spec)
    gens = [rng(100 + i) for i in range(n)]
    sd = math.sqrt(fraction * (1 - fraction) / n)
    for t in (10.0, 50.0):
        d = np.array([model.duration(i, 1, t, gens[i]) for i in range(n)])
        assert set(np.round(d, 9)) <= {1.0, 3.0}
        assert np.mean(d == 3.0) == pytest.approx(fraction, abs=5 * sd)


def test_transient_requires_time_order() -> None:
    spec = {"fraction": 0.5, "slowdown": 2.0, "mode": "transient"}
    model = ComputeModel(2, "constant", rng(), stragglers=spec)
    g = rng()
    model.duration(0, 1, 5.0, g)
    with pytest.raises(ValueError, match="time order"):
        model.duration(0, 1, 4.0, g)


def test_transient_always_slow_when_fraction_one() -> None:
    spec = {"fraction": 1.0, "slowdown": 3.0, "mode": "transient"}
    model = ComputeModel(2, "constant", rng(), stragglers=spec)
    assert model.duration(1, 4, 0.0, rng()) == pytest.approx(12.0)


@pytest.mark.parametrize("kind", COMPUTE_KINDS)
@pytest.mark.parametrize("mode", ["persistent", "transient"])
def test_determinism(kind: str, mode: str) -> None:
    spec = {"fraction": 0.3, "slowdown": 3.0, "mode": mode, "period": 2.0}
    het = {"kind": "lognormal", "sigma": 0.2}

    def run() -> list[float]:
        model = ComputeModel(6, kind, rng(5), heterogeneity=het, stragglers=spec)
        gens = [rng(100 + i) for i in range(6)]
        out, clock = [], np.zeros(6)
        for t in range(30):
            i = t % 6
            d = model.duration(i, 3, float(clock[i]), gens[i])
            clock[i] += d
            out.append(d)
        return out

    assert run() == run()


def test_chunking_does_not_change_transient_process() -> None:
    # With a constant kind no step times are drawn, so one call of 50 steps and 50 calls of
    # one step consume the node's stream identically and must agree.
    spec = {"fraction": 0.4, "slowdown": 2.0, "mode": "transient", "period": 1.0}
    a = ComputeModel(1, "constant", rng(), stragglers=spec)
    b = ComputeModel(1, "constant", rng(), stragglers=spec)
    ga, gb = rng(7), rng(7)
    total_a = a.duration(0, 50, 0.0, ga)
    total_b, now = 0.0, 0.0
    for _ in range(50):
        d = b.duration(0, 1, now, gb)
        now += d
        total_b += d
    assert total_a == pytest.approx(total_b)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mean": -1}, "compute.mean must be > 0, got -1"),
        ({"mean": 0.0}, "compute.mean must be > 0"),
        ({"mean": float("nan")}, "compute.mean"),
        ({"kind": "lognormal", "sigma": -0.1}, "compute.sigma must be >= 0"),
        ({"kind": "pareto", "alpha": 1.0}, "compute.alpha must be > 1"),
        ({"kind": "shifted_exponential", "shift": 1.0}, "compute.shift must be < compute.mean"),
        ({"kind": "shifted_exponential", "shift": -0.5}, "compute.shift must be >= 0"),
        ({"kind": "gamma"}, "compute.kind"),
        ({"heterogeneity": {"kind": "weird"}}, "compute.heterogeneity.kind"),
        ({"heterogeneity": {"kind": "lognormal", "sigma": -1}}, "compute.heterogeneity.sigma"),
        ({"heterogeneity": {"kind": "uniform", "low": 0, "high": 1}}, "compute.heterogeneity.low"),
        ({"heterogeneity": {"kind": "uniform", "low": 2, "high": 1}}, "heterogeneity.high"),
        ({"heterogeneity": {"kind": "uniform"}}, "compute.heterogeneity"),
        ({"heterogeneity": {"kind": "none", "sigm": 1}}, "unknown key"),
        ({"stragglers": {"fraction": 1.5}}, "compute.stragglers.fraction must be in [0, 1]"),
        ({"stragglers": {"fraction": -0.1}}, "compute.stragglers.fraction"),
        ({"stragglers": {"fraction": 0.1, "slowdown": 0.5}}, "compute.stragglers.slowdown"),
        ({"stragglers": {"fraction": 0.1, "mode": "sometimes"}}, "compute.stragglers.mode"),
        ({"stragglers": {"fraction": 0.1, "period": 0}}, "compute.stragglers.period"),
        ({"stragglers": {"fraction": "lots"}}, "compute.stragglers.fraction must be a number"),
    ],
)
def test_validation(kwargs: dict, fragment: str) -> None:
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind", "exponential")
    with pytest.raises(TimingError) as exc:
        ComputeModel(4, kind, rng(), **kwargs)
    assert fragment in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_duration_argument_checks() -> None:
    model = ComputeModel(3, "constant", rng())
    with pytest.raises(IndexError):
        model.duration(3, 1, 0.0, rng())
    with pytest.raises(ValueError, match="steps"):
        model.duration(0, -1, 0.0, rng())


def test_network() -> None:
    assert Network().message_time(1e9) == 0.0
    net = Network(latency=0.01, bandwidth=1e6)
    assert net.message_time(0) == pytest.approx(0.01)
    assert net.message_time(2e6) == pytest.approx(2.01)
    with pytest.raises(TimingError, match="network.latency must be >= 0"):
        Network(latency=-1.0)
    with pytest.raises(TimingError, match="network.bandwidth must be > 0"):
        Network(bandwidth=0.0)
    with pytest.raises(ValueError, match="bits"):
        net.message_time(-1)
