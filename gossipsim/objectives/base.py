"""The :class:`Objective` base class: a dense model plus a loss head, with optional L2 penalty."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from gossipsim.objectives.heads import Head
from gossipsim.objectives.network import DenseNet


class Objective(ABC):
    """A differentiable training objective on flat float64 parameter vectors of length ``dim``.

    ``loss(w, X, y) = mean_i ℓ(f_w(x_i), y_i) + (l2 / 2)·‖w‖²`` where ``f_w`` is a
    :class:`DenseNet` (layout documented there) and ``ℓ`` a :class:`Head`. The L2 penalty applies
    to every parameter, biases included. Inputs: ``X (n, n_features)`` float, ``y (n,)``.
    Subclasses set the class attributes, build ``net``/``head`` and implement
    :meth:`from_spec` and :meth:`init_params`.
    """

    name: ClassVar[str]
    task: ClassVar[str]  # dataset task it fits: "regression" | "binary" | "multiclass"
    has_accuracy: ClassVar[bool]
    has_hidden_layers: ClassVar[bool] = False  # whether `hidden`/`activation` are used

    def __init__(self, net: DenseNet, head: Head, n_classes: int | None, l2: float) -> None:
        if not np.isfinite(l2) or l2 < 0.0:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2}")
        if net.sizes[-1] != head.n_outputs:
            raise ValueError("network output size does not match the loss head")
        self.net = net
        self.head = head
        self.n_features = net.sizes[0]
        self.n_classes = n_classes
        self.l2 = float(l2)
        self.dim = net.dim

    @classmethod
    @abstractmethod
    def from_spec(
        cls,
        n_features: int,
        n_classes: int | None,
        l2: float = 0.0,
        hidden: list[int] | None = None,
        activation: str = "relu",
    ) -> Objective:
        """Build from the generic factory arguments (ignoring those that do not apply)."""

    @abstractmethod
    def init_params(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """A random initial parameter vector of shape ``(dim,)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sizes={self.net.sizes}, l2={self.l2})"

    # ---- batched core: row r of W is evaluated on Xb[r], yb[r] ----

    def _check_batch(
        self, W: np.ndarray, Xb: np.ndarray, yb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        W = np.asarray(W, dtype=np.float64)
        Xb = np.asarray(Xb, dtype=np.float64)
        yb = np.asarray(yb)
        if W.ndim != 2 or W.shape[1] != self.dim:
            raise ValueError(f"W must have shape (k, {self.dim}), got {W.shape}")
        k = W.shape[0]
        if Xb.ndim != 3 or Xb.shape[0] != k or Xb.shape[2] != self.n_features:
            raise ValueError(f"Xb must have shape ({k}, b, {self.n_features}), got {Xb.shape}")
        if Xb.shape[1] < 1:
            raise ValueError("need at least one sample")
        if yb.shape != Xb.shape[:2]:
            raise ValueError(f"yb must have shape {Xb.shape[:2]}, got {yb.shape}")
        return W, Xb, self.head.targets(yb)

    def _penalty(self, W: np.ndarray) -> np.ndarray:
        return 0.5 * self.l2 * np.einsum("kd,kd->k", W, W)

    def loss_many(self, W: np.ndarray, Xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        """Losses ``(k,)``: entry r is ``loss(W[r], Xb[r], yb[r])``."""
        W, Xb, t = self._check_batch(W, Xb, yb)
        out, _ = self.net.forward(W, Xb)
        return self.head.loss(out, t) + self._penalty(W)

    def grad_many(self, W: np.ndarray, Xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        """Gradients ``(k, dim)``: row r is ``grad(W[r], Xb[r], yb[r])`` (vectorized over k)."""
        W, Xb, t = self._check_batch(W, Xb, yb)
        out, cache = self.net.forward(W, Xb)
        G = self.net.backward(W, self.head.dout(out, t), cache)
        if self.l2:
            G += self.l2 * W
        return G

    def loss_and_grad_many(
        self, W: np.ndarray, Xb: np.ndarray, yb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(loss_many, grad_many)`` sharing one forward pass."""
        W, Xb, t = self._check_batch(W, Xb, yb)
        out, cache = self.net.forward(W, Xb)
        losses = self.head.loss(out, t) + self._penalty(W)
        G = self.net.backward(W, self.head.dout(out, t), cache)
        if self.l2:
            G += self.l2 * W
        return losses, G

    # ---- single parameter vector ----

    def _single(
        self, w: np.ndarray, X: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = np.asarray(w, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if w.shape != (self.dim,):
            raise ValueError(f"w must have shape ({self.dim},), got {w.shape}")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n, {self.n_features}), got shape {X.shape}")
        return w[None], X[None], y[None]

    def loss(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over the samples plus the L2 penalty."""
        return float(self.loss_many(*self._single(w, X, y))[0])

    def grad(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`loss`, shape ``(dim,)``."""
        return self.grad_many(*self._single(w, X, y))[0]

    def loss_and_grad(
        self, w: np.ndarray, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """``(loss, grad)`` sharing one forward pass."""
        losses, G = self.loss_and_grad_many(*self._single(w, X, y))
        return float(losses[0]), G[0]

    def predict(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Predicted int64 labels ``(n,)``; raises ``ValueError`` if ``has_accuracy`` is False."""
        if not self.has_accuracy:
            raise ValueError(f"{self.name} has no accuracy/predicted labels (regression objective)")
        w, X, _ = self._single(w, X, np.zeros(0))
        if X.shape[2] != self.n_features:
            raise ValueError(f"X must have {self.n_features} features, got {X.shape[2]}")
        out, _ = self.net.forward(w, X)
        return self.head.predict(out)[0]

    def accuracy(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of samples whose predicted label equals ``y``."""
        pred = self.predict(w, X)
        y = np.asarray(y)
        if y.shape != pred.shape or pred.size == 0:
            raise ValueError(f"y must have shape {pred.shape} with at least one sample")
        return float(np.mean(pred == y))
