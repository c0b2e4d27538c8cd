"""Reference for ``swarm-1k``: the same math as a plain sequential numpy loop, no events.

Per interaction: a uniformly random node takes H SGD steps of logistic regression (H =
``algorithm.local_steps.value``), each on a fresh minibatch of ``batch_size`` rows drawn with
replacement from its own shard (gradient written out by hand: no L2, as in the workload),
then averages its model with a uniformly random neighbour. The loss of the mean model over
the training set is evaluated as many times as the simulation records it.

All random choices are drawn up front in bulk, as a careful hand-written loop would; the
data and the graph come from gossipsim's own builders (not timed), so both sides train on
identical data. :mod:`benchmarks.reference.compiled_limit` runs exactly this math as one
numba loop; :func:`setup` is shared by both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from gossipsim.experiment.runner import Prepared


@dataclass
class SwarmMath:
    """Everything both references need, built from a prepared run (not timed)."""

    n: int
    lr: float
    batch: int  # the configured batch size (a node with a smaller shard uses its shard size)
    local_steps: int  # H
    shards_X: list[np.ndarray]
    shards_y: list[np.ndarray]
    sizes: np.ndarray  # rows per shard
    neighbours: list[np.ndarray]  # sorted neighbour ids per node
    W: np.ndarray  # (n, d + 1) initial models, identical rows
    training_loss: object  # callable: mean model -> float


def setup(prepared: Prepared, seed: int = 0) -> SwarmMath:
    config = prepared.config
    problem = prepared.problem
    if problem.objective.l2 != 0.0:
        raise ValueError("the swarm references have no L2 term")
    steps = config.algorithm.local_steps
    if steps.kind != "fixed":
        raise ValueError("the swarm references take a fixed number of local steps")
    n = len(problem.shard_y)
    rng = np.random.default_rng(seed)
    init = problem.objective.init_params(rng, config.init.scale)
    return SwarmMath(
        n=n,
        lr=float(config.algorithm.lr),
        batch=int(problem.batch_size),
        local_steps=int(steps.value),
        shards_X=problem.shard_X,
        shards_y=[np.asarray(y, dtype=np.float64) for y in problem.shard_y],
        sizes=np.array([y.shape[0] for y in problem.shard_y], dtype=np.int64),
        neighbours=[np.asarray(sorted(prepared.graph.adj[i]), dtype=np.int64) for i in range(n)],
        W=np.tile(init, (n, 1)),
        training_loss=problem.training_loss,
    )


def run(prepared: Prepared, interactions: int, evaluations: int, seed: int = 0) -> dict:
    """Run the loop; return wall time and final loss (the timed part excludes set-up)."""
    m = setup(prepared, seed)
    rng = np.random.default_rng(seed + 1)
    W = m.W
    H = m.local_steps
    lr = m.lr
    shards_X, shards_y, neighbours = m.shards_X, m.shards_y, m.neighbours
    degree = np.array([len(v) for v in neighbours])
    started = time.perf_counter()
    nodes = rng.integers(0, m.n, size=interactions)
    picks = (rng.random(interactions) * degree[nodes]).astype(np.int64)
    # Minibatch rows of the H steps of every interaction (a shard smaller than the batch
    # is taken whole-size, with replacement, like the simulator's min(batch, shard)).
    width = int(min(m.batch, m.sizes.max()))
    minibatches = (rng.random((interactions, H, width)) * m.sizes[nodes][:, None, None]).astype(
        np.int64
    )
    every = max(1, interactions // max(1, evaluations))
    loss = float("nan")
    for t in range(interactions):
        i = nodes[t]
        j = neighbours[i][picks[t]]
        w = W[i]
        b = min(m.batch, int(m.sizes[i]))
        for h in range(H):
            idx = minibatches[t, h, :b]
            X = shards_X[i][idx]
            y = shards_y[i][idx]
            residual = (expit(X @ w[:-1] + w[-1]) - y) / b
            w[:-1] -= lr * (residual @ X)
            w[-1] -= lr * residual.sum()
        average = (W[i] + W[j]) * 0.5
        W[i] = average
        W[j] = average
        if (t + 1) % every == 0:
            loss = m.training_loss(W.mean(axis=0))
    return {"wall_time": time.perf_counter() - started, "loss": loss}
