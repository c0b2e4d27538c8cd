"""Numeric side of the simulation: operations on the ``(n, d)`` model matrix, and their executor.

Node processes never touch model values: they submit operations stamped with their event
time. The executor applies them. Every random draw an operation needs comes from the
stream of the node it belongs to (``sampling/node i``, ``quantize/node i``), drawn in that
node's own order, so any executor that respects each node's order of operations gives the
same numbers as the sequential one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gossipsim.engine.problem import Problem
from gossipsim.quantize import Quantizer
from gossipsim.rng import Streams


@dataclass(frozen=True, slots=True)
class LocalSteps:
    """``steps`` SGD steps of ``node`` on minibatches of its own shard."""

    node: int
    steps: int


@dataclass(frozen=True, slots=True)
class PairAverage:
    """Blocking exchange: ``i`` and ``j`` swap (quantized) models and both keep the average."""

    i: int
    j: int


@dataclass(frozen=True, slots=True)
class BufferExchange:
    """Non-blocking exchange initiated by ``i`` against ``j``'s communication buffer.

    ``i`` folds in what was written to its own buffer since it last published, reads ``j``'s
    buffer, averages, writes the average into ``j``'s buffer and publishes its new model.
    """

    i: int
    j: int


Operation = LocalSteps | PairAverage | BufferExchange


@dataclass
class ExchangeCounters:
    """Totals the executor accumulates while applying exchanges."""

    bits: int = 0
    messages: int = 0
    decode_failures: int = 0


class SequentialExecutor:
    """Applies each operation as soon as it is submitted (the reference path)."""

    def __init__(
        self,
        models: np.ndarray,
        problem: Problem,
        lr: float,
        quantizer: Quantizer,
        streams: Streams,
        buffers: bool = False,
    ) -> None:
        self.models = models
        self.problem = problem
        self.lr = lr
        self.quantizer = quantizer
        n = models.shape[0]
        self.sampling = streams.generators("sampling", n)
        self.quantize_rng = streams.generators("quantize", n)
        self.counters = ExchangeCounters()
        # Non-blocking mode: what each node last published, and its buffer (which others write).
        self.buffer = models.copy() if buffers else None
        self.published = models.copy() if buffers else None

    def submit(self, op: Operation) -> None:
        if isinstance(op, LocalSteps):
            self._local_steps(op.node, op.steps)
        elif isinstance(op, PairAverage):
            self._pair_average(op.i, op.j)
        elif isinstance(op, BufferExchange):
            self._buffer_exchange(op.i, op.j)
        else:  # pragma: no cover - a programming error, not user input
            raise TypeError(f"unknown operation {op!r}")

    def flush(self) -> None:
        """Apply everything submitted so far (nothing is deferred in this executor)."""

    def pending_deltas(self) -> np.ndarray:
        """Σ_j (B_j − P_j): buffer writes not yet folded in (zero in blocking mode)."""
        if self.buffer is None or self.published is None:
            return np.zeros(self.models.shape[1])
        return (self.buffer - self.published).sum(axis=0)

    # -- kernels ---------------------------------------------------------------------------

    def _local_steps(self, node: int, steps: int) -> None:
        objective = self.problem.objective
        features = self.problem.shard_X[node]
        targets = self.problem.shard_y[node]
        size = targets.shape[0]
        batch = min(self.problem.batch_size, size)
        rng = self.sampling[node]
        w = self.models[node]
        for _ in range(steps):
            idx = rng.integers(0, size, size=batch)
            w -= self.lr * objective.grad(w, features[idx], targets[idx])

    def _send(self, x: np.ndarray, reference: np.ndarray, sender: int) -> np.ndarray:
        sent = self.quantizer.transmit(x, reference, self.quantize_rng[sender])
        self.counters.bits += int(sent.bits)
        self.counters.messages += 1
        self.counters.decode_failures += int(sent.failed)
        return sent.value

    def _pair_average(self, i: int, j: int) -> None:
        xi = self.models[i].copy()
        xj = self.models[j].copy()
        received_by_j = self._send(xi, xj, i)
        received_by_i = self._send(xj, xi, j)
        self.models[i] = (xi + received_by_i) * 0.5
        self.models[j] = (xj + received_by_j) * 0.5

    def _buffer_exchange(self, i: int, j: int) -> None:
        assert self.buffer is not None and self.published is not None
        x = self.models[i]
        x += self.buffer[i] - self.published[i]
        read = self._send(self.buffer[j].copy(), x, j)
        average = (x + read) * 0.5
        written = self._send(average, self.buffer[j], i)
        x[:] = average
        self.buffer[j] = written
        self.buffer[i] = x
        self.published[i] = x
