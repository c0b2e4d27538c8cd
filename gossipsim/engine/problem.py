"""The training problem of a run: objective, dataset, per-node shards and initial models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gossipsim.data import Dataset, load_dataset, partition
from gossipsim.objectives import Objective, make_objective
from gossipsim.system.rng import Streams

if TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig


@dataclass
class Problem:
    """Everything numeric a run needs that does not change during it."""

    objective: Objective
    dataset: Dataset
    shard_X: list[np.ndarray]
    shard_y: list[np.ndarray]
    batch_size: int
    # The shards back to back (shard i is rows offsets[i] : offsets[i] + len(shard_y[i])).
    features: np.ndarray | None = None
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = np.concatenate(self.shard_X)
            self.targets = np.concatenate(self.shard_y)

    @property
    def offsets(self) -> np.ndarray:
        """First row of each shard in :attr:`features`."""
        sizes = np.array([y.shape[0] for y in self.shard_y], dtype=np.int64)
        return np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)

    @property
    def n_train(self) -> int:
        return int(self.dataset.X_train.shape[0])

    def _linear_metrics(self):
        """Compiled, parallel metric evaluation for the linear objectives (None: numpy)."""
        if not hasattr(self, "_metrics"):
            from gossipsim.engine.metric_kernels import LinearMetrics  # numba: imported here

            self._metrics = LinearMetrics.of(self.objective, self.dataset)
        return self._metrics

    def training_loss(self, w: np.ndarray) -> float:
        """The full training objective at ``w`` (mean over all training samples + L2)."""
        metrics = self._linear_metrics()
        if metrics is not None:
            return metrics.training_loss(w)
        return float(self.objective.loss(w, self.dataset.X_train, self.dataset.y_train))

    def test_accuracy(self, w: np.ndarray) -> float:
        """Held-out accuracy at ``w``; NaN when the objective has none or no test split."""
        if not self.objective.has_accuracy or self.dataset.X_test.shape[0] == 0:
            return float("nan")
        metrics = self._linear_metrics()
        if metrics is not None:
            return metrics.test_accuracy(w)
        return float(self.objective.accuracy(w, self.dataset.X_test, self.dataset.y_test))


def build_problem(config: RunConfig, n_nodes: int, streams: Streams) -> Problem:
    """Load the dataset, build the objective and split the training set across nodes."""
    obj = config.objective
    ds = obj.dataset
    # The dataset kind's own fields (n_samples, path, ...) as its config model resolved them.
    dataset = load_dataset(
        ds.kind, obj.task, streams.generator("data"), **ds.model_dump(exclude={"kind"})
    )
    objective = make_objective(
        obj.kind,
        n_features=dataset.X_train.shape[1],
        n_classes=dataset.n_classes,
        l2=obj.l2,
        hidden=list(obj.hidden),
        activation=obj.activation,
    )
    part = obj.partition
    shards = partition(
        dataset.y_train,
        n_nodes,
        part.kind,
        streams.generator("partition"),
        task=dataset.task,
        **part.model_dump(exclude={"kind"}),
    )
    # One contiguous copy of the training set in shard order; each shard is a view into it,
    # so the batched executor can gather minibatches of many nodes with one indexing call.
    order = np.concatenate(shards) if shards else np.zeros(0, dtype=np.int64)
    features = np.ascontiguousarray(dataset.X_train[order])
    targets = np.ascontiguousarray(dataset.y_train[order])
    bounds = np.cumsum([len(idx) for idx in shards])[:-1]
    return Problem(
        objective=objective,
        dataset=dataset,
        shard_X=np.split(features, bounds),
        shard_y=np.split(targets, bounds),
        batch_size=obj.batch_size,
        features=features,
        targets=targets,
    )


def initial_models(
    config: RunConfig, problem: Problem, n_nodes: int, streams: Streams
) -> np.ndarray:
    """The ``(n, d)`` matrix of initial node models from the ``init`` section."""
    init = config.init
    dim = problem.objective.dim
    if init.kind == "zeros":
        return np.zeros((n_nodes, dim))
    if init.identical:
        shared = problem.objective.init_params(streams.generator("init"), init.scale)
        return np.tile(shared, (n_nodes, 1))
    generators = streams.generators("init", n_nodes)
    return np.stack([problem.objective.init_params(g, init.scale) for g in generators])
