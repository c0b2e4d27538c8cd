"""Quantizers for model exchange: identity, unbiased stochastic b-bit (QSGD-style) and
reference-point lattice quantization (SwarmSGD) with an omniscient decode-failure check.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QUANTIZERS",
    "LatticeQuantizer",
    "NoQuantizer",
    "Quantizer",
    "StochasticQuantizer",
    "Transmission",
    "make_quantizer",
]

# The lattice header: the seed of the shared dither (an integer, whatever float_bits is).
SEED_BITS = 64
_FIELD = "algorithm.quantizer"
# Above this |x|/epsilon, float64 lattice indices are no longer exact integers.
_MAX_LATTICE_INDEX = 2.0**50


@dataclass
class Transmission:
    """Outcome of sending one vector.

    ``value`` is what the receiver ends up with (always a fresh float64 array that does not
    alias the input), ``bits`` the payload bits sent (headers and any fallback resend
    included), ``failed`` whether a lattice decode failure was detected and a
    full-precision resend happened.
    """

    value: np.ndarray
    bits: int
    failed: bool


def _as_batch(
    X: np.ndarray, REF: np.ndarray | None, rngs: list[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"transmit_many expects X of shape (k, d), got shape {X.shape}")
    if REF is not None:
        REF = np.asarray(REF, dtype=np.float64)
        if REF.shape != X.shape:
            raise ValueError(f"REF shape {REF.shape} does not match X shape {X.shape}")
    if len(rngs) != X.shape[0]:
        raise ValueError(f"need one generator per row: {X.shape[0]} rows, {len(rngs)} rngs")
    return X, REF


def _uniforms(rngs: list[np.random.Generator], d: int) -> np.ndarray:
    """Row ``r`` is ``rngs[r].random(d)``, exactly as a single-row call would draw it."""
    U = np.empty((len(rngs), d))
    for r, g in enumerate(rngs):
        U[r] = g.random(d)
    return U


def _check_float_bits(float_bits: int) -> int:
    if isinstance(float_bits, bool) or float_bits not in (32, 64):
        raise ValueError(f"network.float_bits must be 32 or 64, got {float_bits!r}")
    return int(float_bits)


class Quantizer(ABC):
    """Stateless quantizer; the engine counts failures from :attr:`Transmission.failed`.

    Subclasses implement :meth:`transmit_many`; :meth:`transmit` is the single-row case
    (so the two agree bit for bit). ``float_bits`` (``network.float_bits``) is the width
    of one full-precision number on the wire: an unquantized coordinate or a float field
    of a header.
    """

    name: str = ""
    float_bits: int = 32

    @abstractmethod
    def message_bits(self, d: int) -> int:
        """Bits of one successful message of dimension ``d``."""

    @abstractmethod
    def transmit_many(
        self,
        X: np.ndarray,
        REF: np.ndarray | None,
        rngs: list[np.random.Generator],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Send each row ``X[r]`` against ``REF[r]`` using ``rngs[r]``.

        Returns ``(values (k, d) float64, bits (k,) int64, failed (k,) bool)``, identical to
        calling :meth:`transmit` row by row with the same generators.
        """

    def transmit(
        self, x: np.ndarray, reference: np.ndarray | None, rng: np.random.Generator
    ) -> Transmission:
        """Send ``x`` to a receiver whose own model is ``reference`` (ignored by some kinds)."""
        x = np.asarray(x, dtype=np.float64)
        ref = None if reference is None else np.asarray(reference, dtype=np.float64)
        if ref is not None and ref.shape != x.shape:
            raise ValueError(f"reference shape {ref.shape} does not match x shape {x.shape}")
        V, bits, failed = self.transmit_many(
            x.reshape(1, -1), None if ref is None else ref.reshape(1, -1), [rng]
        )
        return Transmission(value=V[0].reshape(x.shape), bits=int(bits[0]), failed=bool(failed[0]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoQuantizer(Quantizer):
    """Full precision: ``float_bits`` per coordinate, value is a copy of ``x``; draws nothing.

    The value itself stays float64 (the simulator computes in float64 whatever width the
    wire is charged for).
    """

    name = "none"

    def __init__(self, float_bits: int = 32) -> None:
        self.float_bits = _check_float_bits(float_bits)

    def message_bits(self, d: int) -> int:
        return self.float_bits * int(d)

    def transmit_many(
        self,
        X: np.ndarray,
        REF: np.ndarray | None,
        rngs: list[np.random.Generator],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, _ = _as_batch(X, None, rngs)
        k, d = X.shape
        return X.copy(), np.full(k, self.message_bits(d), dtype=np.int64), np.zeros(k, bool)


def _check_bits(bits: int, minimum: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ValueError(f"{_FIELD}.bits must be an integer in [{minimum}, 32], got {bits!r}")
    if not minimum <= bits <= 32:
        raise ValueError(f"{_FIELD}.bits must be in [{minimum}, 32], got {bits}")
    return int(bits)


def _check_epsilon(epsilon: float) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float | np.integer | np.floating):
        raise ValueError(f"{_FIELD}.epsilon must be a positive number, got {epsilon!r}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"{_FIELD}.epsilon must be finite and > 0, got {epsilon!r}")
    return float(epsilon)


def _check_dither(dither: bool) -> bool:
    if not isinstance(dither, bool | np.bool_):
        raise ValueError(f"{_FIELD}.dither must be true or false, got {dither!r}")
    return bool(dither)


class StochasticQuantizer(Quantizer):
    """Unbiased b-bit stochastic quantization with the ∞-norm as scale (QSGD-style).

    Message: a scale ``m = ||x||_inf`` of ``float_bits`` bits, then per coordinate 1 sign
    bit and ``b-1`` bits of level ``l in {0..s}``, ``s = 2^(b-1) - 1``. With
    ``a = |x_i|/m * s``, the level is ``floor(a)`` or ``floor(a)+1`` with probability
    ``a - floor(a)``, so
    ``E[value] = x``. Always draws ``d`` uniforms per message. A row with a non-finite
    entry is passed through unquantized (so divergence stays visible).
    """

    name = "stochastic"

    def __init__(self, bits: int = 8, float_bits: int = 32) -> None:
        self.bits = _check_bits(bits, 2)
        self.levels = 2 ** (self.bits - 1) - 1
        self.float_bits = _check_float_bits(float_bits)

    def message_bits(self, d: int) -> int:
        return self.float_bits + int(d) * self.bits

    def transmit_many(
        self,
        X: np.ndarray,
        REF: np.ndarray | None,
        rngs: list[np.random.Generator],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, _ = _as_batch(X, None, rngs)
        k, d = X.shape
        U = _uniforms(rngs, d)
        s = float(self.levels)
        A = np.abs(X)
        m = np.max(A, axis=1, initial=0.0, keepdims=True)
        finite = np.isfinite(m)
        scale = np.where(finite & (m > 0), m, 1.0)
        a = np.minimum(A / scale * s, s)
        low = np.floor(a)
        level = low + (U < a - low)
        V = np.sign(X) * level * (scale / s)
        V = np.where(finite, V, X)
        return V, np.full(k, self.message_bits(d), dtype=np.int64), np.zeros(k, bool)

    def __repr__(self) -> str:
        return f"StochasticQuantizer(bits={self.bits}, float_bits={self.float_bits})"


class LatticeQuantizer(Quantizer):
    """Cubic-lattice reference-point quantization (SwarmSGD), ``q = 2^b`` levels, step ε.

    Encoding (dither ``u ~ U[0,1)^d`` from ``rng`` if ``dither`` else ``u = 0``; the dither
    is shared randomness: a 64-bit seed in the header, an integer whatever ``float_bits``)::

        k = round(x/ε + u)          (integer lattice index)
        c = k mod q                 (what is sent: b bits per coordinate)

    Decoding against the receiver's reference ``ref`` picks the index ≡ c (mod q) closest to
    ``ref/ε + u``::

        k' = c + q·round((ref − ε(c − u)) / (qε)),   value = ε(k' − u)
           = qε·round((ref − ε(c − u))/(qε)) + ε(c − u)

    Since ``|k − (x/ε + u)| ≤ 1/2``, ``k' = k`` whenever ``||x − ref||_inf < radius`` with
    ``radius = (q − 1)ε/2 = qε/2 − ε/2``; then ``value = ε(k − u)`` and
    ``|value − x|_inf ≤ ε/2``. With dither the error ``ε(round(t) − t)``, ``t = x/ε + u``,
    is uniform on ``[−ε/2, ε/2]`` and independent of ``x``, so ``E[value] = x``; without
    dither it is deterministic rounding (biased).

    Failure check (the simulator is omniscient): a message fails if ``||x − ref||_inf`` is
    not ``< radius``, or if an entry is non-finite or ``|x|/ε >= 2^50``, or (float round-off
    at the boundary) ``k' != k``. A failed message is followed by a full-precision resend:
    ``value = x`` exactly and ``bits = d·b + 64 + float_bits·d``. Dither is drawn either way.
    """

    name = "lattice"

    def __init__(
        self, bits: int = 8, epsilon: float = 1e-3, dither: bool = True, float_bits: int = 32
    ) -> None:
        self.bits = _check_bits(bits, 1)
        self.epsilon = _check_epsilon(epsilon)
        self.dither = _check_dither(dither)
        self.q = 2**self.bits
        self.float_bits = _check_float_bits(float_bits)

    @property
    def radius(self) -> float:
        """Decoding succeeds whenever ``||x − ref||_inf < radius = (q − 1)ε/2``."""
        return (self.q - 1) * self.epsilon / 2.0

    def message_bits(self, d: int) -> int:
        return SEED_BITS + int(d) * self.bits

    def transmit_many(
        self,
        X: np.ndarray,
        REF: np.ndarray | None,
        rngs: list[np.random.Generator],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if REF is None:
            raise ValueError("lattice quantizer needs a reference (the receiver's model)")
        X, REF = _as_batch(X, REF, rngs)
        assert REF is not None  # checked above; _as_batch keeps it
        k, d = X.shape
        eps, q = self.epsilon, float(self.q)
        U = _uniforms(rngs, d) if self.dither else np.zeros((k, d))
        with np.errstate(invalid="ignore", over="ignore"):
            K = np.round(X / eps + U)
            C = np.mod(K, q)
            base = C - U
            Kdec = C + q * np.round((REF - eps * base) / (q * eps))
            V = eps * (Kdec - U)
            dist = np.max(np.abs(X - REF), axis=1, initial=0.0)
            inside = dist < self.radius  # False for NaN
            index_ok = np.max(np.abs(X), axis=1, initial=0.0) / eps < _MAX_LATTICE_INDEX
            exact = np.all(Kdec == K, axis=1)
        failed = ~(inside & index_ok & exact & np.all(np.isfinite(REF), axis=1))
        V[failed] = X[failed]
        bits = np.full(k, self.message_bits(d), dtype=np.int64)
        bits[failed] += self.float_bits * d
        return V, bits, failed

    def __repr__(self) -> str:
        return (
            f"LatticeQuantizer(bits={self.bits}, epsilon={self.epsilon}, dither={self.dither}, "
            f"float_bits={self.float_bits})"
        )


QUANTIZERS: dict[str, type[Quantizer]] = {
    "none": NoQuantizer,
    "stochastic": StochasticQuantizer,
    "lattice": LatticeQuantizer,
}
"""Quantizer kinds accepted by :func:`make_quantizer`."""


def make_quantizer(
    kind: str,
    bits: int = 8,
    epsilon: float = 1e-3,
    dither: bool = True,
    float_bits: int = 32,
) -> Quantizer:
    """Build a quantizer by name; ``bits`` must be in [1, 32] (>= 2 for ``stochastic``),
    ``epsilon`` > 0, ``dither`` a bool and ``float_bits`` (the full-precision width,
    ``network.float_bits``) 32 or 64. Raises ``ValueError`` naming the field."""
    if kind not in QUANTIZERS:
        raise ValueError(
            f"{_FIELD}.kind: unknown quantizer {kind!r}; valid: {', '.join(QUANTIZERS)}"
        )
    _check_bits(bits, 1)
    _check_epsilon(epsilon)
    _check_dither(dither)
    _check_float_bits(float_bits)
    if kind == "none":
        return NoQuantizer(float_bits)
    if kind == "stochastic":
        return StochasticQuantizer(bits, float_bits)
    return LatticeQuantizer(bits, epsilon, dither, float_bits)
