"""Seeded synthetic datasets: linear regression, logistic-model labels, Gaussian class clusters."""

from __future__ import annotations

import numpy as np

from gossipsim.objectives.heads import expit

#: Norm of the true logistic weight vector (logit std ≈ this value): fairly, not fully, separable.
BINARY_WEIGHT_NORM = 4.0
#: Expected distance between two class centres, in units of the within-class std.
CLUSTER_SEPARATION = 4.0


def synthetic_regression(
    rng: np.random.Generator, n: int, f: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """``X ~ N(0, I)``, ``y = X w* + noise·ε`` with ``w* ~ N(0, I/f)`` and ``ε ~ N(0, 1)``."""
    X = rng.standard_normal((n, f))
    w_star = rng.normal(0.0, 1.0 / np.sqrt(f), size=f)
    y = X @ w_star + noise * rng.standard_normal(n)
    return X, y


def _flip(rng: np.random.Generator, y: np.ndarray, p: float, n_classes: int) -> np.ndarray:
    """Replace each label, with probability ``p``, by a different uniformly random class."""
    flip = rng.random(y.shape[0]) < p
    shift = rng.integers(1, n_classes, size=y.shape[0])
    return np.where(flip, (y + shift) % n_classes, y)


def synthetic_binary(
    rng: np.random.Generator, n: int, f: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """``X ~ N(0, I)``, ``y ~ Bernoulli(σ(xᵀw*))`` with ``‖w*‖ = 4``, then each label flipped
    with probability ``noise``. Labels are int64 0/1."""
    X = rng.standard_normal((n, f))
    u = rng.standard_normal(f)
    w_star = BINARY_WEIGHT_NORM * u / np.linalg.norm(u)
    y = (rng.random(n) < expit(X @ w_star)).astype(np.int64)
    return X, _flip(rng, y, noise, 2)


def synthetic_multiclass(
    rng: np.random.Generator, n: int, f: int, n_classes: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced Gaussian clusters ``x = μ_y + N(0, I)``, centres ``μ_c ~ N(0, s²I)`` with
    expected pairwise distance 4; each label then replaced w.p. ``noise`` by another class."""
    s = CLUSTER_SEPARATION / np.sqrt(2.0 * f)
    centres = rng.normal(0.0, s, size=(n_classes, f))
    y = rng.permutation(np.arange(n, dtype=np.int64) % n_classes)
    X = centres[y] + rng.standard_normal((n, f))
    return X, _flip(rng, y, noise, n_classes)
