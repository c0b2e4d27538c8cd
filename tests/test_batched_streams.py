"""Drawing a distribution in blocks gives the same numbers as drawing it one call at a time.

The fast paths fetch timing, pairing, local-step, minibatch and dither draws ahead in
blocks; that is exact only because numpy's generators have this property for every
distribution used. If a numpy release changed it, these tests say so first.
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.algorithms.synchronous.rounds import SynchronousClock
from gossipsim.experiment.runner import build_simulation, prepare
from gossipsim.system.timing import ComputeModel
from tests.conftest import make_config

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
def test_round_durations_equal_compute_model(spec):
    """Synchronous rounds draw step times ahead in blocks: the same durations as one call each."""
    spec = dict(spec)
    kind = spec.pop("kind")
    config = make_config(**{"topology": {"kind": "ring", "n": 6}})
    sim = build_simulation(prepare(config))
    sim.compute = ComputeModel(6, kind, np.random.default_rng(1), **spec)
    clock = SynchronousClock(sim)
    reference = ComputeModel(6, kind, np.random.default_rng(1), **spec)
    streams = [sim.streams.generator("timing", i) for i in range(6)]
    # 1 to 12 steps: numpy sums fewer than 8 numbers in order, more with 8 partial sums.
    steps = np.random.default_rng(2).integers(1, 13, size=(150, 6))
    steps[::7] = np.random.default_rng(3).integers(60, 150, size=steps[::7].shape)  # > a block
    nodes = np.arange(6)
    now = 0.0
    for r in range(150):
        multi = None if r % 3 else steps[r].tolist()  # one step each, or H steps each
        got = clock.durations(nodes, multi, now)
        want = [
            reference.duration(i, 1 if multi is None else multi[i], now, streams[i])
            for i in range(6)
        ]
        assert got.tolist() == want
        now += float(max(want))
