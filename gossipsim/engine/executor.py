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


@dataclass(frozen=True, slots=True)
class GradientSnapshot:
    """``node`` computes a minibatch gradient at its current model and keeps it (AD-PSGD)."""

    node: int


@dataclass(frozen=True, slots=True)
class ApplyGradient:
    """``node`` applies its kept gradient to its (possibly since averaged) model."""

    node: int


@dataclass(frozen=True, slots=True)
class Mix:
    """Synchronous gossip round: every node averages its neighbours' (quantized) models.

    ``weights`` is a doubly stochastic sparse mixing matrix (e.g. Metropolis–Hastings).
    """

    weights: object  # scipy.sparse.csr_matrix


@dataclass(frozen=True, slots=True)
class PushSend:
    """Push-sum: ``i`` keeps half its numerator and weight and sends the other half to ``j``.

    The message is in flight under ``message`` until the matching :class:`PushReceive`.
    """

    i: int
    j: int
    message: int


@dataclass(frozen=True, slots=True)
class PushReceive:
    """Push-sum: message ``message`` arrives at its destination and is added in."""

    message: int


@dataclass(frozen=True, slots=True)
class PushSumStep:
    """Push-sum: ``node`` takes an SGD step at its de-biased model z = x / w."""

    node: int


@dataclass(frozen=True, slots=True)
class AllReduceStep:
    """Synchronous large-batch step: all nodes' gradients are averaged (ring all-reduce)."""


@dataclass(frozen=True, slots=True)
class GlobalAverage:
    """Every node's model is replaced by the average of all of them (all-reduce of models)."""


Operation = (
    LocalSteps
    | PairAverage
    | BufferExchange
    | GradientSnapshot
    | ApplyGradient
    | Mix
    | PushSend
    | PushReceive
    | PushSumStep
    | AllReduceStep
    | GlobalAverage
)


class LazyGenerators:
    """``streams.generator(purpose, i)`` for ``i`` in ``0..n-1``, each made on first use.

    Creating a generator costs tens of microseconds; a run whose quantizer draws nothing
    never needs the ``quantize`` streams of its nodes.
    """

    def __init__(self, streams: Streams, purpose: str, n: int) -> None:
        self._streams = streams
        self._purpose = purpose
        self._made: list[np.random.Generator | None] = [None] * n

    def __len__(self) -> int:
        return len(self._made)

    def __getitem__(self, node: int) -> np.random.Generator:
        generator = self._made[node]
        if generator is None:
            generator = self._streams.generator(self._purpose, node)
            self._made[node] = generator
        return generator


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
        self.quantize_rng = LazyGenerators(streams, "quantize", n)
        self.counters = ExchangeCounters()
        # Non-blocking mode: what each node last published, and its buffer (which others write).
        self.buffer = models.copy() if buffers else None
        self.published = models.copy() if buffers else None
        # AD-PSGD: gradients computed but not yet applied.
        self.kept_gradient: dict[int, np.ndarray] = {}
        # Push-sum (SGP): numerators x_i and weights w_i; ``models`` holds z_i = x_i / w_i.
        self.numerators: np.ndarray | None = None
        self.weights: np.ndarray | None = None
        self.in_flight: dict[int, tuple[int, np.ndarray, float]] = {}
        self._dispatch = {
            LocalSteps: lambda op: self._local_steps(op.node, op.steps),
            PairAverage: lambda op: self._pair_average(op.i, op.j),
            BufferExchange: lambda op: self._buffer_exchange(op.i, op.j),
            GradientSnapshot: lambda op: self._gradient_snapshot(op.node),
            ApplyGradient: lambda op: self._apply_gradient(op.node),
            Mix: lambda op: self._mix(op.weights),
            PushSend: lambda op: self._push_send(op.i, op.j, op.message),
            PushReceive: lambda op: self._push_receive(op.message),
            PushSumStep: lambda op: self._push_sum_step(op.node),
            AllReduceStep: lambda op: self._all_reduce_step(),
            GlobalAverage: lambda op: self._global_average(),
        }

    def submit(self, op: Operation) -> None:
        self._dispatch[type(op)](op)

    def flush(self) -> None:
        """Apply everything submitted so far (nothing is deferred in this executor)."""

    def pending_deltas(self) -> np.ndarray:
        """Σ_j (B_j − P_j): buffer writes not yet folded in (zero in blocking mode)."""
        if self.buffer is None or self.published is None:
            return np.zeros(self.models.shape[1])
        return (self.buffer - self.published).sum(axis=0)

    def enable_push_sum(self) -> None:
        """Start push-sum bookkeeping: numerators = models, weights = 1."""
        self.numerators = self.models.copy()
        self.weights = np.ones(self.models.shape[0])

    def push_sum_totals(self) -> tuple[np.ndarray, float]:
        """(Σ numerators, Σ weights) over nodes and messages in flight (conserved at lr 0)."""
        assert self.numerators is not None and self.weights is not None
        numerator = self.numerators.sum(axis=0)
        weight = float(self.weights.sum())
        for _, x, w in self.in_flight.values():
            numerator = numerator + x
            weight += w
        return numerator, weight

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

    def _minibatch_gradient(self, node: int, w: np.ndarray) -> np.ndarray:
        """One minibatch gradient of ``node``'s shard at ``w`` (draws from its sampling stream)."""
        targets = self.problem.shard_y[node]
        size = targets.shape[0]
        idx = self.sampling[node].integers(0, size, size=min(self.problem.batch_size, size))
        return self.problem.objective.grad(w, self.problem.shard_X[node][idx], targets[idx])

    def _gradient_snapshot(self, node: int) -> None:
        self.kept_gradient[node] = self._minibatch_gradient(node, self.models[node])

    def _apply_gradient(self, node: int) -> None:
        self.models[node] -= self.lr * self.kept_gradient.pop(node)

    def _mix(self, weights) -> None:
        n = self.models.shape[0]
        if self.quantizer.name == "none":
            self.counters.bits += int(weights.nnz - n) * self.quantizer.message_bits(
                self.models.shape[1]
            )
            self.counters.messages += int(weights.nnz - n)
            self.models[:] = weights @ self.models
            return
        old = self.models.copy()
        new = np.zeros_like(old)
        indptr, indices, data = weights.indptr, weights.indices, weights.data
        for i in range(n):
            for position in range(indptr[i], indptr[i + 1]):
                j = int(indices[position])
                received = old[i] if j == i else self._send(old[j], old[i], j)
                new[i] += data[position] * received
        self.models[:] = new

    def _push_sum_step(self, node: int) -> None:
        assert self.numerators is not None
        gradient = self._minibatch_gradient(node, self.models[node])
        self.numerators[node] -= self.lr * gradient
        self._debias(node)

    def _push_send(self, i: int, j: int, message: int) -> None:
        assert self.numerators is not None and self.weights is not None
        half = self.numerators[i] * 0.5
        weight = self.weights[i] * 0.5
        self.numerators[i] = half
        self.weights[i] = weight
        # The numerator travels (quantized if configured) with its weight (one float). The
        # sender keeps the quantization error, so numerator mass is conserved exactly.
        sent = self._send(half, half, i)
        self.counters.bits += 64
        self.numerators[i] = half + (half - sent)
        self.in_flight[message] = (j, sent, weight)
        self._debias(i)

    def _push_receive(self, message: int) -> None:
        assert self.numerators is not None and self.weights is not None
        j, x, w = self.in_flight.pop(message)
        self.numerators[j] += x
        self.weights[j] += w
        self._debias(j)

    def _debias(self, node: int) -> None:
        assert self.numerators is not None and self.weights is not None
        self.models[node] = self.numerators[node] / self.weights[node]

    def _all_reduce_step(self) -> None:
        n = self.models.shape[0]
        gradients = np.stack([self._minibatch_gradient(i, self.models[i]) for i in range(n)])
        self.models[:] = self.models.mean(axis=0) - self.lr * gradients.mean(axis=0)

    def _global_average(self) -> None:
        self.models[:] = self.models.mean(axis=0)

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
