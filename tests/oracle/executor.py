"""The test oracle for the numeric operations: each applied on its own, written out in scalar form.

This is the executor the project started with. The engine now applies every operation
through its one wave form (``gossipsim.engine.batched``; the sequential executor there
runs waves of one); ``tests/test_operations.py`` holds both to this one.
"""

from __future__ import annotations

import numpy as np

from gossipsim.engine.executor import (
    AllReduceStep,
    ApplyGradient,
    BufferExchange,
    ExchangeCounters,
    GlobalAverage,
    GradientSnapshot,
    GroupAverage,
    LazyGenerators,
    LocalSteps,
    Mix,
    MixGradient,
    Operation,
    PairAverage,
    PushReceive,
    PushSend,
    PushSumStep,
)
from gossipsim.engine.problem import Problem
from gossipsim.system.quantize import Quantizer
from gossipsim.system.rng import Streams


class ScalarExecutor:
    """Applies each operation as soon as it is submitted, in scalar form."""

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
            MixGradient: lambda op: self._mix_gradient(op.weights, op.nodes),
            PushSend: lambda op: self._push_send(op.i, op.j, op.message),
            PushReceive: lambda op: self._push_receive(op.message),
            PushSumStep: lambda op: self._push_sum_step(op.node),
            AllReduceStep: lambda op: self._all_reduce_step(),
            GlobalAverage: lambda op: self._global_average(),
            GroupAverage: lambda op: self._group_average(op.weights),
        }

    accepts_logs = False  # the compiled loop submits operations one at a time

    def submit(self, op: Operation) -> None:
        self._dispatch[type(op)](op)  # type: ignore[operator]

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

    def _mix_gradient(self, weights, nodes: tuple[int, ...]) -> None:
        gradients = {i: self._minibatch_gradient(i, self.models[i].copy()) for i in nodes}
        self._mix(weights)
        for i, gradient in gradients.items():
            self.models[i] -= self.lr * gradient

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
        self.counters.bits += self.quantizer.float_bits  # the weight, at full precision
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

    def _group_average(self, weights) -> None:
        self.models[:] = weights @ self.models  # an all-reduce per group: no gossip messages

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
        # Three messages: i's read request (a one-word header, no model), j's reply (its
        # buffer) and i's write of the average into j's buffer.
        self.counters.messages += 1
        self.counters.bits += self.quantizer.float_bits
        x = self.models[i]
        x += self.buffer[i] - self.published[i]
        read = self._send(self.buffer[j].copy(), x, j)
        average = (x + read) * 0.5
        written = self._send(average, self.buffer[j], i)
        x[:] = average
        self.buffer[j] = written
        self.buffer[i] = x
        self.published[i] = x
