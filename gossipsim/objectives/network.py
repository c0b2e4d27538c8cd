"""Fully connected networks over packed flat parameter vectors, evaluated for many vectors at once.

Linear models are the special case with no hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("relu", "tanh")


class DenseNet:
    """A dense network ``sizes[0] -> ... -> sizes[-1]`` whose parameters are one flat vector.

    Layout: for each layer ``l`` in order, its weight matrix ``W_l`` of shape
    ``(fan_in, fan_out)`` flattened row-major, then its bias ``b_l`` of shape ``(fan_out,)``.
    With no hidden layer this is ``(f + 1, m)`` row-major: weights, then the bias as last row.
    Hidden layers use ``activation``; the output layer is affine (logits / predictions).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu") -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"layer sizes must be >= 2 positive integers, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.sizes = sizes
        self.activation = activation
        # (weight start, weight end == bias start, bias end, fan_in, fan_out) per layer
        self.layers: list[tuple[int, int, int, int, int]] = []
        offset = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            w_end = offset + fan_in * fan_out
            self.layers.append((offset, w_end, w_end + fan_out, fan_in, fan_out))
            offset = w_end + fan_out
        self.dim = offset

    def unpack(self, W: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-layer views ``(W_l (k, fan_in, fan_out), b_l (k, fan_out))`` of ``W (k, dim)``."""
        k = W.shape[0]
        return [
            (W[:, s:e].reshape(k, fan_in, fan_out), W[:, e:be])
            for s, e, be, fan_in, fan_out in self.layers
        ]

    def forward(self, W: np.ndarray, Xb: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs ``(k, b, sizes[-1])`` for params ``W (k, dim)`` and inputs ``Xb (k, b, f)``.

        The cache holds each layer's input activations, for :meth:`backward`.
        """
        params = self.unpack(W)
        inputs: list[np.ndarray] = []
        A = Xb
        for i, (Wl, bl) in enumerate(params):
            inputs.append(A)
            Z = np.matmul(A, Wl)
            Z += bl[:, None, :]
            if i < len(params) - 1:
                A = np.maximum(Z, 0.0) if self.activation == "relu" else np.tanh(Z)
            else:
                A = Z
        return A, inputs

    def backward(self, W: np.ndarray, dout: np.ndarray, inputs: list[np.ndarray]) -> np.ndarray:
        """Parameter gradient ``(k, dim)`` from ``dout = dL/d(outputs)`` and the forward cache."""
        params = self.unpack(W)
        G = np.empty_like(W)
        dZ = dout
        for i in range(len(params) - 1, -1, -1):
            s, e, be, _, _ = self.layers[i]
            A_in = inputs[i]
            G[:, s:e] = np.matmul(A_in.transpose(0, 2, 1), dZ).reshape(W.shape[0], -1)
            G[:, e:be] = dZ.sum(axis=1)
            if i > 0:
                dA = np.matmul(dZ, params[i][0].transpose(0, 2, 1))
                # A_in is the activation of the previous layer's pre-activation Z.
                if self.activation == "relu":
                    dZ = dA * (A_in > 0.0)
                else:
                    dZ = dA * (1.0 - A_in * A_in)
        return G

    def init_scaled(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """He (relu) or Glorot (tanh) normal weights times ``scale``; zero biases."""
        w = np.zeros(self.dim)
        for s, e, _, fan_in, fan_out in self.layers:
            if self.activation == "relu":
                std = np.sqrt(2.0 / fan_in)
            else:
                std = np.sqrt(2.0 / (fan_in + fan_out))
            w[s:e] = rng.normal(0.0, std * scale, size=e - s)
        return w
