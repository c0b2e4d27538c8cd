"""Tests for gossipsim.system.quantize: lattice round-trip and failure, unbiasedness, bit
accounting, and agreement of the batched path with row-by-row transmission.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gossipsim.system.quantize import (
    QUANTIZERS,
    LatticeQuantizer,
    NoQuantizer,
    StochasticQuantizer,
    Transmission,
    make_quantizer,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- identity -----------------------------------------------------------------------------


def test_none_is_identity_copy() -> None:
    q = make_quantizer("none")
    x = rng().normal(size=10)
    g = rng(1)
    state = g.bit_generator.state
    t = q.transmit(x, None, g)
    assert isinstance(t, Transmission)
    np.testing.assert_array_equal(t.value, x)
    assert t.value is not x and not np.shares_memory(t.value, x)
    assert t.bits == 32 * 10 == q.message_bits(10)
    assert t.failed is False
    assert g.bit_generator.state == state


# -- lattice ------------------------------------------------------------------------------


@pytest.mark.parametrize("dither", [True, False])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_lattice_round_trip_inside_radius(bits: int, dither: bool) -> None:
    eps = 1e-3
    q = make_quantizer("lattice", bits=bits, epsilon=eps, dither=dither)
    assert isinstance(q, LatticeQuantizer)
    assert q.radius == pytest.approx((2**bits - 1) * eps / 2)
    g = rng(bits)
    d = 500
    for _ in range(20):
        ref = g.normal(scale=3.0, size=d)
        # Offsets up to 99.9% of the radius in every coordinate, some right at the edge.
        off = g.uniform(-1, 1, size=d) * q.radius * 0.999
        off[:5] = q.radius * 0.999 * np.array([1, -1, 1, -1, 1])
        x = ref + off
        t = q.transmit(x, ref, g)
        assert not t.failed
        assert np.max(np.abs(t.value - x)) <= eps / 2 + 1e-12
        assert t.bits == q.message_bits(d) == d * bits + 64


def test_lattice_decoding_uses_only_code_and_reference() -> None:
    # The decoded value is the lattice point eps*(k - u): independent of which reference
    # (within the radius) the receiver holds.
    q = LatticeQuantizer(bits=4, epsilon=0.01)
    x = rng().normal(size=50)
    a = q.transmit(x, x + 0.05, rng(3)).value
    b = q.transmit(x, x - 0.06, rng(3)).value
    np.testing.assert_array_equal(a, b)


def test_lattice_matches_documented_formula() -> None:
    eps, bits = 0.01, 3
    qn = 2**bits
    q = LatticeQuantizer(bits=bits, epsilon=eps, dither=True)
    g = rng(5)
    x = g.normal(size=40)
    ref = x + g.uniform(-0.03, 0.03, size=40)  # radius = 0.035
    u = rng(9).random(40)
    c = np.mod(np.round(x / eps + u), qn)
    expected = qn * eps * np.round((ref - eps * (c - u)) / (qn * eps)) + eps * (c - u)
    t = q.transmit(x, ref, rng(9))
    np.testing.assert_allclose(t.value, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dither", [True, False])
def test_lattice_failure_outside_radius(dither: bool) -> None:
    eps, bits, d = 1e-3, 4, 100
    q = LatticeQuantizer(bits=bits, epsilon=eps, dither=dither)
    g = rng(7)
    ref = g.normal(size=d)
    x = ref.copy()
    x[17] += q.radius * 1.0001  # one coordinate just outside
    t = q.transmit(x, ref, g)
    assert t.failed
    np.testing.assert_array_equal(t.value, x)
    assert t.bits == d * bits + 64 + 32 * d
    x[17] = ref[17] + 5.0  # far outside: a real decode would be badly wrong
    t = q.transmit(x, ref, g)
    assert t.failed and np.array_equal(t.value, x)


def test_lattice_failure_on_non_finite() -> None:
    q = LatticeQuantizer(bits=8, epsilon=1e-3)
    x = np.array([0.0, np.nan, 1.0])
    t = q.transmit(x, np.zeros(3), rng())
    assert t.failed and np.array_equal(t.value, x, equal_nan=True)
    t = q.transmit(np.zeros(3), np.array([0.0, np.inf, 0.0]), rng())
    assert t.failed
    big = np.full(3, 1e20)
    t = q.transmit(big, big, rng())  # index |x|/eps beyond exact float integers
    assert t.failed and np.array_equal(t.value, big)


def test_lattice_dither_unbiased() -> None:
    eps = 0.1
    q = LatticeQuantizer(bits=4, epsilon=eps, dither=True)
    x = np.array([0.0, 0.03, -0.27, 1.2345, 0.05, -0.05])
    ref = x + np.array([0.3, -0.2, 0.1, 0.0, -0.5, 0.6])  # radius = 0.75
    draws = 20_000
    g = rng(11)
    total = np.zeros_like(x)
    for _ in range(draws):
        t = q.transmit(x, ref, g)
        assert not t.failed
        total += t.value
    # The error is uniform on [-eps/2, eps/2]: std eps/sqrt(12).
    tol = 5 * eps / math.sqrt(12 * draws)
    np.testing.assert_allclose(total / draws, x, rtol=0, atol=tol)


def test_lattice_without_dither_is_deterministic_rounding() -> None:
    eps = 0.1
    q = LatticeQuantizer(bits=4, epsilon=eps, dither=False)
    x = np.array([0.03, 0.26, -0.44])
    g = rng()
    state = g.bit_generator.state
    t = q.transmit(x, np.zeros(3), g)
    np.testing.assert_allclose(t.value, [0.0, 0.3, -0.4], atol=1e-12)
    assert g.bit_generator.state == state


def test_lattice_requires_reference() -> None:
    q = LatticeQuantizer()
    with pytest.raises(ValueError, match="reference"):
        q.transmit(np.zeros(3), None, rng())
    with pytest.raises(ValueError, match="shape"):
        q.transmit(np.zeros(3), np.zeros(4), rng())


# -- stochastic ---------------------------------------------------------------------------


def test_stochastic_unbiased() -> None:
    bits = 3  # s = 3 levels: coarse, so the test has teeth
    q = StochasticQuantizer(bits)
    s = 2 ** (bits - 1) - 1
    x = np.array([1.0, -0.5, 0.3, -0.01, 0.0, 0.77, -1.0, 0.123])
    m = np.max(np.abs(x))
    draws = 20_000
    g = rng(4)
    values = np.empty((draws, x.size))
    for r in range(draws):
        values[r] = q.transmit(x, None, g).value
    # Levels: every value is sign * l * m / s with l in 0..s.
    lv = np.abs(values) * s / m
    np.testing.assert_allclose(lv, np.round(lv), atol=1e-9)
    assert lv.max() <= s + 1e-9
    # Variance of one coordinate: (m/s)^2 p (1-p) with p the fractional level.
    a = np.abs(x) / m * s
    p = a - np.floor(a)
    std = (m / s) * np.sqrt(p * (1 - p))
    tol = 5 * std / math.sqrt(draws) + 1e-12
    assert np.all(np.abs(values.mean(axis=0) - x) <= tol)
    # Exact coordinates (levels hit exactly) are transmitted exactly.
    for i in (0, 4, 6):
        assert np.all(values[:, i] == x[i])


def test_stochastic_bits_and_edge_cases() -> None:
    q = make_quantizer("stochastic", bits=8)
    t = q.transmit(np.zeros(7), None, rng())
    np.testing.assert_array_equal(t.value, 0.0)
    assert t.bits == 32 + 7 * 8 == q.message_bits(7)
    assert not t.failed
    x = np.array([1.0, np.inf, 2.0])
    t = q.transmit(x, None, rng())
    np.testing.assert_array_equal(t.value, x)  # passed through
    x = rng().normal(size=(3, 4))  # any shape: one scale for the whole array
    assert q.transmit(x, None, rng()).value.shape == (3, 4)


# -- batched path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantizer",
    [
        NoQuantizer(),
        StochasticQuantizer(4),
        LatticeQuantizer(bits=3, epsilon=0.01, dither=True),
        LatticeQuantizer(bits=8, epsilon=1e-3, dither=False),
    ],
    ids=repr,
)
def test_transmit_many_matches_row_by_row(quantizer) -> None:
    k, d = 12, 64
    g = rng(2)
    REF = g.normal(size=(k, d))
    scale = 0.0 if quantizer.name == "none" else getattr(quantizer, "radius", 1.0)
    reach = np.where(np.arange(k) % 2 == 0, 0.9, 1.5)[:, None]  # odd rows fail for lattice
    X = REF + g.uniform(-1, 1, size=(k, d)) * reach * scale
    X[3] = 0.0
    seeds = [100 + r for r in range(k)]
    V, bits, failed = quantizer.transmit_many(X, REF, [rng(s) for s in seeds])
    assert V.shape == (k, d) and bits.shape == (k,) and failed.shape == (k,)
    assert V.dtype == np.float64 and bits.dtype == np.int64 and failed.dtype == bool
    for r in range(k):
        t = quantizer.transmit(X[r], REF[r], rng(seeds[r]))
        np.testing.assert_array_equal(V[r], t.value)
        assert V[r].tobytes() == t.value.tobytes()
        assert bits[r] == t.bits and failed[r] == t.failed
    if quantizer.name == "lattice":
        assert 0 < failed.sum() < k
    # The generators advance exactly as in the single-row calls.
    gens = [rng(s) for s in seeds]
    quantizer.transmit_many(X, REF, gens)
    for r, s in enumerate(seeds):
        single = rng(s)
        quantizer.transmit(X[r], REF[r], single)
        assert gens[r].bit_generator.state == single.bit_generator.state


def test_transmit_many_checks_shapes() -> None:
    q = LatticeQuantizer()
    with pytest.raises(ValueError, match="one generator per row"):
        q.transmit_many(np.zeros((2, 3)), np.zeros((2, 3)), [rng()])
    with pytest.raises(ValueError, match="shape"):
        q.transmit_many(np.zeros(3), np.zeros(3), [rng()])


# -- factory ------------------------------------------------------------------------------


def test_factory_and_registry() -> None:
    assert set(QUANTIZERS) == {"none", "stochastic", "lattice"}
    for kind in QUANTIZERS:
        assert make_quantizer(kind).name == kind
    lat = make_quantizer("lattice", bits=5, epsilon=0.5, dither=False)
    assert (lat.bits, lat.epsilon, lat.dither) == (5, 0.5, False)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("lattice", 0), "algorithm.quantizer.bits"),
        (("lattice", 33), "algorithm.quantizer.bits"),
        (("lattice", 2.5), "algorithm.quantizer.bits"),
        (("stochastic", 1), "algorithm.quantizer.bits must be in [2, 32]"),
        (("lattice", 8, 0.0), "algorithm.quantizer.epsilon"),
        (("lattice", 8, float("inf")), "algorithm.quantizer.epsilon"),
        (("lattice", 8, 1e-3, "yes"), "algorithm.quantizer.dither"),
        (("float16",), "algorithm.quantizer.kind"),
    ],
)
def test_factory_validation(args: tuple, fragment: str) -> None:
    with pytest.raises(ValueError) as exc:
        make_quantizer(*args)
    assert fragment in str(exc.value)
