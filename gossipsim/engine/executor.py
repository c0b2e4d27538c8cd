"""Numeric side of the simulation: the operations on the ``(n, d)`` model matrix.

Node processes never touch model values: they submit operations stamped with their event
time, and the executors (:mod:`gossipsim.engine.batched`) apply them. Every random draw an
operation needs comes from the stream of the node it belongs to (``sampling/node i``,
``quantize/node i``), drawn in that node's own order, so any executor that respects each
node's order of operations gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gossipsim.system.rng import Streams


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
class MixGradient:
    """D-PSGD round as Lian et al. write it: X ← W·X − γ·G(X), gradients at the old models.

    Each of ``nodes`` draws a minibatch from its own shard and takes a gradient at its model
    as it was before the round; every model is then replaced by its ``weights`` row
    average of the (quantized) neighbourhood models, and each of ``nodes`` subtracts
    ``lr`` times its gradient from the average. Nodes not in ``nodes`` only average.
    """

    weights: object  # scipy.sparse.csr_matrix, doubly stochastic
    nodes: tuple[int, ...]


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


@dataclass(frozen=True, slots=True)
class GroupAverage:
    """Every node's model is replaced by the exact average over its group (an all-reduce
    within each group; under faults, the groups of nodes that can still reach each other).

    ``weights`` averages inside each group (row i: 1/|group| on i's group). Unlike
    :class:`Mix` it sends nothing itself: the algorithm counts the all-reduces' messages.
    """

    weights: object  # scipy.sparse.csr_matrix


Operation = (
    LocalSteps
    | PairAverage
    | BufferExchange
    | GradientSnapshot
    | ApplyGradient
    | Mix
    | MixGradient
    | PushSend
    | PushReceive
    | PushSumStep
    | AllReduceStep
    | GlobalAverage
    | GroupAverage
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
