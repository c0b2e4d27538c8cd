"""Loss heads: mean-over-samples losses of network outputs, their output gradients, predictions."""

from __future__ import annotations

import numpy as np


def expit(z: np.ndarray) -> np.ndarray:
    """The logistic function σ(z) = 1 / (1 + e^(−z)), without overflow for any z."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_expit(z: np.ndarray) -> np.ndarray:
    """log σ(z) = −log(1 + e^(−z)), stably: −(max(0, −z) + log1p(e^(−|z|)))."""
    return -np.logaddexp(0.0, -z)


class Head:
    """A loss on network outputs ``out (k, b, m)`` vs targets ``t (k, b)``; rows independent."""

    n_outputs: int
    has_accuracy: bool = True

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Validated targets in the dtype the head computes with."""
        raise NotImplementedError

    def loss(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Mean loss of each row, shape ``(k,)``."""
        raise NotImplementedError

    def dout(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Gradient of each row's mean loss w.r.t. ``out``, shape ``(k, b, m)``."""
        raise NotImplementedError

    def predict(self, out: np.ndarray) -> np.ndarray:
        """Predicted labels ``(k, b)``."""
        raise ValueError(f"{type(self).__name__} has no accuracy (not a classification loss)")


class SquaredHead(Head):
    """``½·mean((out − y)²)`` for a single real output."""

    n_outputs = 1
    has_accuracy = False

    def targets(self, y: np.ndarray) -> np.ndarray:
        t = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError("regression targets must be finite")
        return t

    def loss(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        r = out[..., 0] - t
        return 0.5 * np.mean(r * r, axis=1)

    def dout(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        return ((out[..., 0] - t) / t.shape[1])[..., None]


class LogisticHead(Head):
    """Mean binary cross-entropy of logit ``z`` with labels in {0, 1}, via stable log-sigmoid."""

    n_outputs = 1

    def targets(self, y: np.ndarray) -> np.ndarray:
        t = np.asarray(y, dtype=np.float64)
        if np.any((t != 0.0) & (t != 1.0)):
            raise ValueError("logistic labels must be 0 or 1")
        return t

    def loss(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = out[..., 0]
        return -np.mean(t * log_expit(z) + (1.0 - t) * log_expit(-z), axis=1)

    def dout(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        return ((expit(out[..., 0]) - t) / t.shape[1])[..., None]

    def predict(self, out: np.ndarray) -> np.ndarray:
        return (out[..., 0] > 0.0).astype(np.int64)


class SoftmaxHead(Head):
    """Mean multiclass cross-entropy of logits ``(…, C)``, int labels ``0..C-1`` (stable LSE)."""

    def __init__(self, n_classes: int) -> None:
        self.n_outputs = n_classes

    def targets(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("labels must be finite")
        t = y.astype(np.intp)
        if y.size and (np.any(t != y) or t.min() < 0 or t.max() >= self.n_outputs):
            raise ValueError(f"labels must be integers in 0..{self.n_outputs - 1}")
        return t

    @staticmethod
    def _shifted_lse(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S = out - out.max(axis=-1, keepdims=True)
        return S, np.log(np.exp(S).sum(axis=-1, keepdims=True))

    def loss(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        S, lse = self._shifted_lse(out)
        picked = np.take_along_axis(S, t[..., None], axis=-1)
        return np.mean((lse - picked)[..., 0], axis=1)

    def dout(self, out: np.ndarray, t: np.ndarray) -> np.ndarray:
        S, lse = self._shifted_lse(out)
        P = np.exp(S - lse)
        k, b = t.shape
        P[np.arange(k)[:, None], np.arange(b)[None, :], t] -= 1.0
        P /= b
        return P

    def predict(self, out: np.ndarray) -> np.ndarray:
        return np.argmax(out, axis=-1).astype(np.int64)
