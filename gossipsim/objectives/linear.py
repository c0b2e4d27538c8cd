"""Linear objectives with a bias term: least squares, logistic regression, softmax regression.

Layout ``(f + 1, m)`` row-major: the ``f·m`` weights, then the ``m`` biases (``m = 1`` for least
squares and logistic, i.e. ``[w_1..w_f, b]``; ``m = C`` for softmax).
"""

from __future__ import annotations

import numpy as np

from gossipsim.objectives.base import Objective
from gossipsim.objectives.heads import LogisticHead, SoftmaxHead, SquaredHead
from gossipsim.objectives.network import DenseNet


def _check_n_features(n_features: int) -> int:
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features}")
    return int(n_features)


class _Linear(Objective):
    """Shared initialisation of the linear objectives."""

    def init_params(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """Every entry (bias included) i.i.d. ``N(0, scale² / n_features)``.

        With standardized features this keeps the initial logits / predictions of order
        ``scale`` whatever the number of features (``scale = 1`` is the standard LeCun
        initialisation, as for the MLP), so the initial loss does not explode with ``f``.
        """
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        fan_in = self.net.sizes[0]
        return rng.normal(0.0, scale / np.sqrt(fan_in), size=self.dim)


class LeastSquares(_Linear):
    """``½·mean((xᵀw + b − y)²) + (l2/2)·‖(w, b)‖²`` with real targets."""

    name = "least_squares"
    task = "regression"
    has_accuracy = False

    def __init__(self, n_features: int, l2: float = 0.0) -> None:
        super().__init__(DenseNet([_check_n_features(n_features), 1]), SquaredHead(), None, l2)

    @classmethod
    def from_spec(
        cls,
        n_features: int,
        n_classes: int | None,
        l2: float = 0.0,
        hidden: list[int] | None = None,
        activation: str = "relu",
    ) -> LeastSquares:
        """``n_classes``, ``hidden`` and ``activation`` are ignored."""
        return cls(n_features, l2)


class Logistic(_Linear):
    """Mean binary cross-entropy of ``σ(xᵀw + b)`` with labels in {0, 1}, plus the L2 penalty."""

    name = "logistic"
    task = "binary"
    has_accuracy = True

    def __init__(self, n_features: int, l2: float = 0.0) -> None:
        super().__init__(DenseNet([_check_n_features(n_features), 1]), LogisticHead(), 2, l2)

    @classmethod
    def from_spec(
        cls,
        n_features: int,
        n_classes: int | None,
        l2: float = 0.0,
        hidden: list[int] | None = None,
        activation: str = "relu",
    ) -> Logistic:
        """``n_classes`` must be None or 2; ``hidden`` and ``activation`` are ignored."""
        if n_classes not in (None, 2):
            raise ValueError(f"logistic is binary: n_classes must be None or 2, got {n_classes}")
        return cls(n_features, l2)


def _check_n_classes(n_classes: int | None, name: str) -> int:
    if n_classes is None or int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"{name} needs n_classes >= 2, got {n_classes}")
    return int(n_classes)


class Softmax(_Linear):
    """Mean multiclass cross-entropy of ``softmax(xᵀW + b)``, int labels ``0..C-1``, plus L2.

    Parameters: ``W`` of shape ``(f + 1, C)`` flattened row-major, the last row is the bias.
    """

    name = "softmax"
    task = "multiclass"
    has_accuracy = True

    def __init__(self, n_features: int, n_classes: int, l2: float = 0.0) -> None:
        c = _check_n_classes(n_classes, "softmax")
        super().__init__(DenseNet([_check_n_features(n_features), c]), SoftmaxHead(c), c, l2)

    @classmethod
    def from_spec(
        cls,
        n_features: int,
        n_classes: int | None,
        l2: float = 0.0,
        hidden: list[int] | None = None,
        activation: str = "relu",
    ) -> Softmax:
        """``hidden`` and ``activation`` are ignored."""
        return cls(n_features, _check_n_classes(n_classes, "softmax"), l2)


def optimum_least_squares(X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """Exact minimiser ``(f + 1,)`` of :class:`LeastSquares` (layout ``[w, b]``) on ``(X, y)``.

    For ``l2 = 0`` the minimum-norm least-squares solution; for ``l2 > 0`` the ridge solution
    (penalising the bias too), both via :func:`numpy.linalg.lstsq`.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 1:
        raise ValueError(f"need X (n, f) and y (n,) with n >= 1, got {X.shape} and {y.shape}")
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2 must be a finite number >= 0, got {l2}")
    n = X.shape[0]
    A = np.hstack([X, np.ones((n, 1))])
    if l2 == 0:
        return np.linalg.lstsq(A, y, rcond=None)[0]
    # ½/n·‖Aw − y‖² + (λ/2)‖w‖² = ½‖[A/√n; √λ·I] w − [y/√n; 0]‖²
    d = A.shape[1]
    A_aug = np.vstack([A / np.sqrt(n), np.sqrt(l2) * np.eye(d)])
    y_aug = np.concatenate([y / np.sqrt(n), np.zeros(d)])
    return np.linalg.lstsq(A_aug, y_aug, rcond=None)[0]
