"""Reference for ``swarm-1k``: the same math as a plain sequential numpy loop, no events.

Per interaction: a uniformly random node takes one SGD step of logistic regression on a
minibatch of its own shard (gradient written out by hand), then averages its model with a
uniformly random neighbour. The loss of the mean model over the training set is evaluated
as many times as the simulation records it. All random choices are drawn up front in bulk,
as a careful hand-written loop would; the data and the graph come from gossipsim's own
builders (not timed), so both sides train on identical data.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import expit

from gossipsim.experiment.runner import Prepared


def run(prepared: Prepared, interactions: int, evaluations: int, seed: int = 0) -> dict:
    """Run the loop; return wall time and final loss (the timed part excludes set-up)."""
    problem = prepared.problem
    n = len(problem.shard_y)
    lr = prepared.config.algorithm.lr
    batch = problem.batch_size
    shards_X = problem.shard_X
    shards_y = problem.shard_y
    neighbours = [np.asarray(sorted(prepared.graph.adj[i])) for i in range(n)]
    degree = np.array([len(v) for v in neighbours])
    rng = np.random.default_rng(seed)
    W = np.tile(problem.objective.init_params(rng, 0.1), (n, 1))
    started = time.perf_counter()
    nodes = rng.integers(0, n, size=interactions)
    picks = (rng.random(interactions) * degree[nodes]).astype(np.int64)
    sizes = np.array([y.shape[0] for y in shards_y])
    minibatches = (rng.random((interactions, batch)) * sizes[nodes][:, None]).astype(np.int64)
    every = max(1, interactions // evaluations)
    loss = float("nan")
    for t in range(interactions):
        i = nodes[t]
        j = neighbours[i][picks[t]]
        idx = minibatches[t]
        X = shards_X[i][idx]
        y = shards_y[i][idx]
        w = W[i]
        residual = (expit(X @ w[:-1] + w[-1]) - y) / batch
        w[:-1] -= lr * (residual @ X)
        w[-1] -= lr * residual.sum()
        average = (W[i] + W[j]) * 0.5
        W[i] = average
        W[j] = average
        if (t + 1) % every == 0:
            loss = problem.training_loss(W.mean(axis=0))
    return {"wall_time": time.perf_counter() - started, "loss": loss}
