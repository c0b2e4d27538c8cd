"""The compiled kernels of the batched executor (gossipsim.engine.kernels).

Kernel gradients against ``Objective.grad_many`` on the same rows (every linear objective,
with and without L2, uneven batch sizes), the stop-to-refill protocol, several local steps
of one node in order, pair averaging, and a run of the benchmark's shape against the
sequential executor (tests/test_batched_equivalence.py runs every algorithm, quantizer and
objective with them).
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.engine import kernels
from gossipsim.engine.schedule import schedule_params
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.objectives import make_objective
from tests.test_batched_equivalence import assert_same_run, config_for

LINEAR = {
    "least_squares": (None, kernels.SQUARED),
    "logistic": (2, kernels.LOGISTIC),
    "softmax": (4, kernels.SOFTMAX),
}


def _data(kind: str, n_classes: int | None, rows: int, f: int, rng: np.random.Generator):
    X = rng.normal(size=(rows, f))
    if kind == "least_squares":
        y = rng.normal(size=rows)
    elif kind == "logistic":
        y = (rng.random(rows) < 0.5).astype(np.int64)
    else:
        y = rng.integers(0, n_classes, size=rows)
    return X, y


def _shards(sizes: list[int], batch: int, steps: int, rng: np.random.Generator):
    """Offsets, per-node batch sizes and an index buffer holding ``steps`` batches each."""
    sizes_arr = np.array(sizes, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes_arr)[:-1])).astype(np.int64)
    widths = np.minimum(batch, sizes_arr)
    buffer = np.zeros((len(sizes), steps * int(widths.max())), dtype=np.int64)
    for node, (size, width) in enumerate(zip(sizes, widths.tolist(), strict=True)):
        buffer[node, : steps * width] = rng.integers(0, size, size=steps * width)
    capacity = steps * widths
    return offsets, widths, buffer, capacity


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("name", list(LINEAR))
def test_kernel_gradient_equals_grad_many(name, l2):
    n_classes, head = LINEAR[name]
    rng = np.random.default_rng(7)
    f, batch = 13, 9
    sizes = [30, 4, 9, 1, 17]  # shards smaller than the batch: batch sizes 9, 4, 9, 1, 9
    X, y = _data(name, n_classes, sum(sizes), f, rng)
    objective = make_objective(name, n_features=f, n_classes=n_classes, l2=l2)
    assert kernels.linear_head(objective) == head
    offsets, widths, buffer, capacity = _shards(sizes, batch, 1, rng)
    nodes = np.array([3, 0, 4, 1, 2], dtype=np.int64)
    W = rng.normal(size=(len(nodes), objective.dim))
    G = np.full_like(W, np.nan)
    cursor = np.zeros(len(sizes), dtype=np.int64)
    targets = np.ascontiguousarray(objective.head.targets(y))
    m = objective.net.sizes[-1]
    done = kernels.gradients(
        W, G, nodes, 0, X, targets, buffer, cursor, capacity, widths, offsets, l2, head, m
    )
    assert done == len(nodes)
    np.testing.assert_array_equal(cursor, widths)
    for r, node in enumerate(nodes.tolist()):
        rows = offsets[node] + buffer[node, : widths[node]]
        want = objective.grad(W[r], X[rows], y[rows])
        np.testing.assert_allclose(G[r], want, rtol=1e-13, atol=1e-15 * np.abs(want).max())


@pytest.mark.parametrize("name", list(LINEAR))
def test_local_steps_run_in_order_and_stop_to_refill(name):
    """Several steps of a node chain (each at the model the last left); a short buffer
    stops the kernel at that node, with the steps done so far applied and counted."""
    n_classes, head = LINEAR[name]
    rng = np.random.default_rng(11)
    f, batch, lr, l2 = 6, 5, 0.1, 0.01
    sizes = [12, 3, 20]
    X, y = _data(name, n_classes, sum(sizes), f, rng)
    objective = make_objective(name, n_features=f, n_classes=n_classes, l2=l2)
    targets = np.ascontiguousarray(objective.head.targets(y))
    m = objective.net.sizes[-1]
    offsets, widths, buffer, capacity = _shards(sizes, batch, 4, rng)
    capacity[2] = 2 * widths[2]  # node 2 has indices for two steps only
    models = rng.normal(size=(3, objective.dim))
    expected = models.copy()
    nodes = np.array([1, 2, 0], dtype=np.int64)
    steps = np.array([3, 4, 2], dtype=np.int64)
    cursor = np.zeros(3, dtype=np.int64)
    args = (X, targets, buffer, cursor, capacity, widths, offsets, l2, head, m)
    counter = np.zeros(3, dtype=np.int64)
    # A constant rate, no momentum: plain SGD steps, counted per node.
    sgd = (schedule_params(lr), counter, counter, np.ones(3), np.zeros((0, models.shape[1])))
    args = (*sgd, 0.0, False, *args)
    stopped = kernels.local_steps(models, nodes, steps, 0, *args)
    assert stopped == 1  # node 2, after two of its four steps
    np.testing.assert_array_equal(steps, [0, 2, 2])
    np.testing.assert_array_equal(cursor, [0, 3 * widths[1], 2 * widths[2]])
    for node, count in ((1, 3), (2, 2)):
        for step in range(count):
            rows = offsets[node] + buffer[node, step * widths[node] : (step + 1) * widths[node]]
            expected[node] -= lr * objective.grad(expected[node], X[rows], y[rows])
    np.testing.assert_allclose(models, expected, rtol=1e-13, atol=1e-15)
    # Refill node 2 as the sampler does, and carry on from where the kernel stopped.
    cursor[2] = 0
    capacity[2] = 4 * widths[2]
    np.testing.assert_array_equal(counter, [0, 3, 2])
    assert kernels.local_steps(models, nodes, steps, stopped, *args) == 3
    np.testing.assert_array_equal(counter, [2, 3, 4])
    np.testing.assert_array_equal(steps, [0, 0, 0])
    for node, count in ((2, 2), (0, 2)):
        for step in range(count):
            rows = offsets[node] + buffer[node, step * widths[node] : (step + 1) * widths[node]]
            expected[node] -= lr * objective.grad(expected[node], X[rows], y[rows])
    np.testing.assert_allclose(models, expected, rtol=1e-13, atol=1e-15)


def test_linear_head_covers_only_linear_objectives():
    assert kernels.linear_head(make_objective("mlp", n_features=4, n_classes=3, hidden=[5])) is None
    for name, (n_classes, head) in LINEAR.items():
        assert kernels.linear_head(make_objective(name, n_features=4, n_classes=n_classes)) == head


def test_pair_average():
    rng = np.random.default_rng(3)
    models = rng.normal(size=(6, 4))
    I, J = np.array([0, 4, 2]), np.array([5, 1, 3])
    mean = (models[I] + models[J]) * 0.5
    untouched = models.copy()
    kernels.pair_average(models, I, J)
    np.testing.assert_array_equal(models[I], mean)
    np.testing.assert_array_equal(models[J], mean)
    kernels.pair_average(untouched, I[:0], J[:0])
    np.testing.assert_array_equal(untouched, untouched)


# -- whole runs with the kernels on -----------------------------------------------------------


def test_swarm_1k_like_run_with_kernels():
    """The benchmark's shape, scaled down: SwarmSGD, logistic, d = 50, batch 32, H = 1."""
    overrides = {
        "objective.dataset": {"kind": "synthetic", "n_samples": 12000, "n_features": 50},
        "objective.batch_size": 32,
        "topology": {"kind": "random_regular", "n": 60, "degree": 4},
        "init": {"kind": "normal", "scale": 0.1, "identical": True},
        "stop": {"interactions": 3000},
        "record": {"every": 5.0},
    }
    overrides["algorithm.local_steps"] = {"kind": "fixed", "value": 1}
    runs = [
        simulate(prepare(config_for("swarmsgd", "none", "logistic", executor, **overrides)))
        for executor in ("sequential", "batched")
    ]
    assert runs[1][1].executor.flushes >= 1
    assert runs[1][1].executor._linear is not None  # the kernels did run
    assert_same_run(*runs)


@pytest.mark.parametrize("kind", ["least_squares", "logistic", "softmax"])
def test_metric_kernels_equal_the_objective_and_ignore_thread_count(kind):
    """Recorded loss and accuracy: the compiled pass equals numpy to rounding, and gives the
    same bits with one thread as with two (fixed blocks, added in order)."""
    import numba

    from gossipsim.engine.metric_kernels import LinearMetrics

    rng = np.random.default_rng(3)
    n, f = 10_000, 7
    X = rng.normal(size=(n, f))
    classes = 4 if kind == "softmax" else 2
    y = rng.normal(size=n) if kind == "least_squares" else rng.integers(0, classes, size=n)
    objective = make_objective(kind, f, classes if kind == "softmax" else None, l2=0.01)
    w = rng.normal(size=objective.dim)
    metrics = LinearMetrics.of(objective, _Split(X[:8000], y[:8000], X[8000:], y[8000:]))
    assert metrics is not None
    assert metrics.training_loss(w) == pytest.approx(
        objective.loss(w, X[:8000], y[:8000]), rel=1e-12
    )
    if kind != "least_squares":
        assert metrics.test_accuracy(w) == objective.accuracy(w, X[8000:], y[8000:])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = (metrics.training_loss(w), metrics.test_accuracy(w))
    finally:
        numba.set_num_threads(threads)
    assert repr(single) == repr((metrics.training_loss(w), metrics.test_accuracy(w)))
    # Small data sets run the serial driver, large ones the parallel one: the same bits.
    from gossipsim.engine import metric_kernels

    features, targets = metrics.train
    arguments = (np.ascontiguousarray(w), features, targets, metrics.head, metrics.m, True)
    serial = metric_kernels._sums_serial(*arguments)
    assert repr(serial) == repr(metric_kernels._sums_parallel(*arguments))


class _Split:
    def __init__(self, X_train, y_train, X_test, y_test):
        self.X_train, self.y_train, self.X_test, self.y_test = X_train, y_train, X_test, y_test
