"""Drawing a distribution in blocks gives the same numbers as drawing it one call at a time.

The fast paths fetch timing, pairing, local-step, minibatch and dither draws ahead in
blocks; that is exact only because numpy's generators have this property for every
distribution used. If a numpy release changed it, these tests say so first.
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.config import FixedLocalSteps, GeometricLocalSteps
from gossipsim.engine.draws import NodeClock, local_step_draws, neighbour_draws
from gossipsim.timing import ComputeModel

ONE_AT_A_TIME = {
    "minibatch": (lambda g: g.integers(0, 37, size=5), lambda g, k: g.integers(0, 37, size=5 * k)),
    "neighbour": (lambda g: g.integers(4), lambda g, k: g.integers(4, size=k)),
    "geometric": (lambda g: g.geometric(0.3), lambda g, k: g.geometric(0.3, size=k)),
    "uniform": (lambda g: g.random(7), lambda g, k: g.random(7 * k)),
    "lognormal": (lambda g: g.lognormal(-0.1, 0.5, 1), lambda g, k: g.lognormal(-0.1, 0.5, k)),
    "exponential": (lambda g: g.exponential(2.0, 1), lambda g, k: g.exponential(2.0, k)),
    "pareto": (lambda g: g.pareto(3.0, 1), lambda g, k: g.pareto(3.0, k)),
}


@pytest.mark.parametrize("name", sorted(ONE_AT_A_TIME))
def test_block_equals_one_at_a_time(name):
    single, block = ONE_AT_A_TIME[name]
    one = np.random.default_rng(11)
    many = np.random.default_rng(11)
    singles = np.concatenate([np.atleast_1d(single(one)) for _ in range(300)])
    np.testing.assert_array_equal(block(many, 300).ravel(), singles)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "constant"},
        {"kind": "exponential"},
        {"kind": "shifted_exponential", "shift": 0.3},
        {"kind": "lognormal", "sigma": 0.7, "heterogeneity": {"kind": "lognormal", "sigma": 0.4}},
        {"kind": "lognormal", "sigma": 0.0},
        {"kind": "pareto", "alpha": 2.5, "stragglers": {"fraction": 0.3, "slowdown": 5.0}},
        {
            "kind": "exponential",
            "stragglers": {"fraction": 0.3, "slowdown": 3.0, "mode": "transient"},
        },
    ],
    ids=lambda s: (
        s["kind"] + ("-" + s["stragglers"].get("mode", "persistent") if "stragglers" in s else "")
    ),
)
def test_node_clock_equals_compute_model(spec):
    spec = dict(spec)
    kind = spec.pop("kind")
    reference_model = ComputeModel(6, kind, np.random.default_rng(1), **spec)
    fast_model = ComputeModel(6, kind, np.random.default_rng(1), **spec)
    steps = np.random.default_rng(2).integers(1, 12, size=400)
    for node in range(6):
        rng_ref = np.random.default_rng(100 + node)
        clock = NodeClock(fast_model, node, np.random.default_rng(100 + node))
        now = 0.0
        for k in steps.tolist():
            expected = reference_model.duration(node, k, now, rng_ref)
            assert clock.duration(k, now) == expected
            now += expected


def test_neighbour_and_local_step_draws():
    neighbours = np.array([3, 8, 9, 20])
    ref = np.random.default_rng(5)
    fast = neighbour_draws(neighbours, np.random.default_rng(5))
    assert [fast.take() for _ in range(700)] == [
        int(neighbours[ref.integers(len(neighbours))]) for _ in range(700)
    ]
    geometric = GeometricLocalSteps(kind="geometric", mean=3.0)
    ref = np.random.default_rng(6)
    draw = local_step_draws(geometric, np.random.default_rng(6))
    assert [draw() for _ in range(700)] == [int(ref.geometric(1.0 / 3.0)) for _ in range(700)]
    assert local_step_draws(FixedLocalSteps(kind="fixed", value=4), ref)() == 4
